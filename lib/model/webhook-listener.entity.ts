import { Column, Entity, Index, JoinColumn, ManyToOne } from 'typeorm';
import { ManagedWebhookObject } from './managed-object.entity.js';
import { WebhookIdentity } from './webhook-identity.entity.js';
import { WebhookUrl } from './webhook-url.entity.js';

export const ENTITY_NAME_MAX_LENGTH = 100;

/** Subscribes one URL to the state changes of one registered entity type within a space. */
@Entity('webhook_listener')
@Index('IDX_webhook_listener_space_entity_state', ['linkedSpaceId', 'entity', 'state'])
export class WebhookListener extends ManagedWebhookObject {
  /** Technical name of a registered `@WebhookEntity`. */
  @Column({ type: 'varchar', length: ENTITY_NAME_MAX_LENGTH })
  entity: string;

  /** States that trigger a webhook; empty means every state. */
  @Column({ type: 'simple-json' })
  entityStates: string[];

  @Column({ type: 'boolean', default: false })
  notifyEveryChange: boolean;

  @Column({ type: 'boolean', default: true })
  enablePayloadSignatureAndState: boolean;

  @ManyToOne(() => WebhookIdentity, { nullable: true, onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'identityId', foreignKeyConstraintName: 'FK_webhook_listener_identity' })
  identity: WebhookIdentity | null;

  @ManyToOne(() => WebhookUrl, { nullable: false, onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'urlId', foreignKeyConstraintName: 'FK_webhook_listener_url' })
  url: WebhookUrl;
}
