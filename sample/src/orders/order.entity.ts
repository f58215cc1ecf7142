import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import { WebhookEntity, WebhookSpace, WebhookState } from 'nestjs-webhook-listener';
import { OrderState } from './order-state.js';

/**
 * An order of a shop with several tenants. Listeners subscribe to it as `Order`; each tenant is a
 * space of its own, so a listener hears only about the orders of its tenant.
 */
@Entity('sample_order')
@WebhookEntity({ name: 'Order', id: 1001, states: OrderState })
export class Order {
  @PrimaryGeneratedColumn()
  id: number;

  @WebhookSpace()
  @Column({ type: 'int' })
  tenantId: number;

  @WebhookState()
  @Column({ type: 'varchar', length: 16 })
  state: OrderState;

  @Column({ type: 'varchar', length: 100 })
  customer: string;

  @CreateDateColumn()
  createdOn: Date;

  @UpdateDateColumn()
  updatedOn: Date;
}
