import { Column, DeleteDateColumn, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import { WebhookEntity, WebhookSpace, WebhookState } from '../../lib/index.js';

export enum OrderState {
  PENDING = 'PENDING',
  CONFIRMED = 'CONFIRMED',
  SHIPPED = 'SHIPPED',
  CANCELLED = 'CANCELLED',
}

@Entity('test_order')
@WebhookEntity({ name: 'Order', id: 1001, states: OrderState })
export class Order {
  @PrimaryGeneratedColumn()
  id: number;

  @WebhookSpace()
  @Column({ type: 'int' })
  tenantId: number;

  @WebhookState()
  @Column({ type: 'varchar', length: 20 })
  state: OrderState;
}

export enum RefundStage {
  Requested,
  Approved,
  Paid,
}

/** A second entity with a numeric enum, no explicit name or id, and no space property. */
@Entity('test_refund')
@WebhookEntity({ states: RefundStage })
export class Refund {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  @WebhookState()
  @Column({ type: 'int' })
  stage: RefundStage;
}

export enum ParcelState {
  PACKED = 'PACKED',
  IN_TRANSIT = 'IN_TRANSIT',
  DELIVERED = 'DELIVERED',
}

/** A third entity with a string primary key, a space and soft deletion. */
@Entity('test_parcel')
@WebhookEntity({ name: 'Parcel', states: ParcelState })
export class Parcel {
  @PrimaryColumn({ type: 'varchar', length: 40 })
  code: string;

  @WebhookSpace()
  @Column({ type: 'int' })
  shop: number;

  @WebhookState()
  @Column({ type: 'varchar', length: 20 })
  state: ParcelState;

  @Column({ type: 'varchar', length: 100, default: '' })
  note: string;

  @DeleteDateColumn({ nullable: true })
  removedOn: Date | null;
}

/** A fourth entity, whose composite key can be longer than a webhook event's `entityId` holds. */
@Entity('test_voucher')
@WebhookEntity({ name: 'Voucher', states: ['ISSUED', 'REDEEMED'] })
export class Voucher {
  @PrimaryColumn({ type: 'varchar', length: 120 })
  issuer: string;

  @PrimaryColumn({ type: 'varchar', length: 120 })
  code: string;

  @WebhookSpace()
  @Column({ type: 'int' })
  shop: number;

  @WebhookState()
  @Column({ type: 'varchar', length: 20 })
  state: string;
}

/** A fifth entity, with a generated key and a unique column that `upsert()` goes by. */
@Entity('test_shipment')
@WebhookEntity({ name: 'Shipment', states: ['NEW', 'SENT', 'DONE'] })
export class Shipment {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ type: 'varchar', length: 20, unique: true })
  ref: string;

  @WebhookSpace()
  @Column({ type: 'int' })
  tenantId: number;

  @WebhookState()
  @Column({ type: 'varchar', length: 20 })
  state: string;

  /** Stored with a random suffix, as an encrypting transformer stores a value differently each time. */
  @Column({ type: 'varchar', length: 60, nullable: true, transformer: { to: saltedNote, from: (value: unknown) => value } })
  note: string | null;

  /** Kept as first written: an upsert() does not overwrite it. */
  @Column({ type: 'varchar', length: 20, nullable: true, update: false })
  origin: string | null;

  /** Unique only by an index the application makes itself, which the entity does not declare. */
  @Column({ type: 'varchar', length: 20, nullable: true })
  label: string | null;
}

function saltedNote(value: unknown): unknown {
  return typeof value === 'string' ? `${value}~${Math.random()}` : value;
}
