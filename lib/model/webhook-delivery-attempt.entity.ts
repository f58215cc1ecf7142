import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { BIGINT_AS_NUMBER } from './bigint.transformer.js';
import { WebhookDelivery } from './webhook-delivery.entity.js';

export enum WebhookAttemptOutcome {
  /** A 2xx answer within the timeout. */
  SUCCEEDED = 'SUCCEEDED',
  /** Any other status, including redirects (which are not followed). */
  HTTP_ERROR = 'HTTP_ERROR',
  TIMEOUT = 'TIMEOUT',
  /** DNS failure, refused or reset connection, TLS error… */
  NETWORK_ERROR = 'NETWORK_ERROR',
  /** The address is not public and not allowed: nothing was sent. */
  REFUSED = 'REFUSED',
}

export const ATTEMPT_ERROR_MAX_LENGTH = 500;

/** One HTTP try of a delivery, as it happened. */
@Entity('webhook_delivery_attempt')
@Index('IDX_webhook_delivery_attempt_delivery', ['deliveryId'])
export class WebhookDeliveryAttempt {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ type: 'int' })
  deliveryId: number;

  // No foreign key, for the same reason as a delivery's event: the dispatcher writes attempts in
  // batches for deliveries it holds, and the scheduled jobs remove attempts before their deliveries.
  @ManyToOne(() => WebhookDelivery, { createForeignKeyConstraints: false })
  @JoinColumn({ name: 'deliveryId' })
  delivery?: WebhookDelivery;

  @Column({ type: 'int' })
  linkedSpaceId: number;

  @Column({ type: 'int' })
  listenerId: number;

  /** 1 for the first try of the delivery. */
  @Column({ type: 'int' })
  attemptNumber: number;

  /** Epoch milliseconds when the request started. */
  @Column({ type: 'bigint', transformer: BIGINT_AS_NUMBER })
  startedAt: number;

  @Column({ type: 'int' })
  durationMs: number;

  @Column({ type: 'varchar', length: 16 })
  outcome: WebhookAttemptOutcome;

  @Column({ type: 'int', nullable: true })
  statusCode: number | null;

  /** The start of the receiver's answer, cut at `delivery.maxResponseBytes`. */
  @Column({ type: 'text', nullable: true })
  responseBody: string | null;

  @Column({ type: 'varchar', length: ATTEMPT_ERROR_MAX_LENGTH, nullable: true })
  error: string | null;
}
