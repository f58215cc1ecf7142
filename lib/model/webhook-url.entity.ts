import { Column, Entity, Index } from 'typeorm';
import { ManagedWebhookObject } from './managed-object.entity.js';

export const URL_MIN_LENGTH = 9;
export const URL_MAX_LENGTH = 500;

/** An address webhooks are posted to; one URL can serve many listeners of its space. */
@Entity('webhook_url')
@Index('IDX_webhook_url_space_url', ['linkedSpaceId', 'url'])
export class WebhookUrl extends ManagedWebhookObject {
  @Column({ type: 'varchar', length: URL_MAX_LENGTH })
  url: string;

  /** Set for URLs the host application manages itself (as opposed to ones its users entered). */
  @Column({ type: 'boolean', default: false })
  applicationManaged: boolean;
}
