import { Column, Entity, Index } from 'typeorm';
import { ManagedWebhookObject } from './managed-object.entity.js';

/**
 * The signing keys of a space's webhooks: an ECDSA P-256 key pair (for `X-Signature`) and an
 * HMAC secret (for Standard Webhooks). The private parts are never selected by default, so reads
 * and searches cannot return them.
 */
@Entity('webhook_identity')
export class WebhookIdentity extends ManagedWebhookObject {
  @Index('IDX_webhook_identity_key_id', { unique: true })
  @Column({ type: 'varchar', length: 36 })
  keyId: string;

  /** Base64 of the DER SubjectPublicKeyInfo, as wallee serves its public keys. */
  @Column({ type: 'text' })
  publicKey: string;

  /** The identity that signs for listeners of its space that name none; made on first need. */
  @Column({ type: 'boolean', default: false })
  spaceDefault: boolean;

  @Column({ type: 'text', select: false })
  privateKey?: string;

  @Column({ type: 'text', select: false })
  secret?: string;
}
