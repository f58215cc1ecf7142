import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { BIGINT_AS_NUMBER } from './bigint.transformer.js';
import { WebhookEvent } from './webhook-event.entity.js';
import { WebhookListener } from './webhook-listener.entity.js';

export enum WebhookDeliveryState {
  /** Waiting for its next attempt (the first, or a retry). */
  PENDING = 'PENDING',
  SUCCEEDED = 'SUCCEEDED',
  /** Every attempt of the retry schedule failed; kept in the log. */
  ABANDONED = 'ABANDONED',
  /** Its listener was deleted before it was delivered. */
  CANCELLED = 'CANCELLED',
}

/** One event for one listener: what the dispatcher sends, retries and logs. */
@Entity('webhook_delivery')
@Index('IDX_webhook_delivery_due', ['state', 'nextAttemptAt'])
@Index('IDX_webhook_delivery_listener', ['listenerId', 'state'])
@Index('IDX_webhook_delivery_event', ['eventId'])
export class WebhookDelivery {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ type: 'int' })
  eventId: number;

  // No foreign keys to the event and the listener: checking them for every delivery of a change was
  // most of what capture added to a save() on PostgreSQL. Events and deliveries are written together;
  // the scheduled jobs remove deliveries before the events and listeners they refer to, and a
  // delivery whose listener is gone is cancelled unsent.
  @ManyToOne(() => WebhookEvent, { createForeignKeyConstraints: false })
  @JoinColumn({ name: 'eventId' })
  event?: WebhookEvent;

  @Column({ type: 'int' })
  listenerId: number;

  @ManyToOne(() => WebhookListener, { createForeignKeyConstraints: false })
  @JoinColumn({ name: 'listenerId' })
  listener?: WebhookListener;

  /** The listener's URL, copied so that the dispatcher can cap requests per URL without a join. */
  @Column({ type: 'int' })
  urlId: number;

  @Column({ type: 'int' })
  linkedSpaceId: number;

  @Column({ type: 'varchar', length: 16 })
  state: WebhookDeliveryState;

  @Column({ type: 'int', default: 0 })
  attempts: number;

  /** Epoch milliseconds of the next attempt. */
  @Column({ type: 'bigint', transformer: BIGINT_AS_NUMBER })
  nextAttemptAt: number;

  /** The instance that holds the delivery while it is in flight, and until when (epoch ms). */
  @Column({ type: 'varchar', length: 64, nullable: true })
  leaseOwner: string | null;

  @Column({ type: 'bigint', nullable: true, transformer: BIGINT_AS_NUMBER })
  leaseUntil: number | null;

  /** Epoch milliseconds when it succeeded, was abandoned or cancelled. */
  @Column({ type: 'bigint', nullable: true, transformer: BIGINT_AS_NUMBER })
  completedAt: number | null;

  @CreateDateColumn()
  createdOn: Date;
}
