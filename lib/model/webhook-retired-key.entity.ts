import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { BIGINT_AS_NUMBER } from './bigint.transformer.js';
import { WebhookIdentity } from './webhook-identity.entity.js';

/**
 * Key material an identity had before a rotation. Its public key stays readable for receivers that
 * still hold signatures made with it, and its secret signs beside the new one until `signsUntil`.
 */
@Entity('webhook_retired_key')
export class WebhookRetiredKey {
  @PrimaryGeneratedColumn()
  id: number;

  @Index('IDX_webhook_retired_key_identity')
  @Column({ type: 'int' })
  identityId: number;

  @ManyToOne(() => WebhookIdentity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'identityId', foreignKeyConstraintName: 'FK_webhook_retired_key_identity' })
  identity?: WebhookIdentity;

  @Index('IDX_webhook_retired_key_key_id', { unique: true })
  @Column({ type: 'varchar', length: 36 })
  keyId: string;

  /** Base64 of the DER SubjectPublicKeyInfo. */
  @Column({ type: 'text' })
  publicKey: string;

  /** The Standard Webhooks secret, sealed as it was on the identity. */
  @Column({ type: 'text', select: false })
  secret?: string;

  /** Epoch milliseconds of the rotation. */
  @Column({ type: 'bigint', transformer: BIGINT_AS_NUMBER })
  retiredAt: number;

  /** Epoch milliseconds until which requests carry a signature with this secret too. */
  @Column({ type: 'bigint', transformer: BIGINT_AS_NUMBER })
  signsUntil: number;
}
