import { WebhookDeliveryAttempt } from './webhook-delivery-attempt.entity.js';
import { WebhookDelivery } from './webhook-delivery.entity.js';
import { WebhookEvent } from './webhook-event.entity.js';
import { WebhookIdentity } from './webhook-identity.entity.js';
import { WebhookListener } from './webhook-listener.entity.js';
import { WebhookRetiredKey } from './webhook-retired-key.entity.js';
import { WebhookUrl } from './webhook-url.entity.js';

/** Add these to the host's TypeORM `entities` (or rely on `autoLoadEntities`). */
export const WEBHOOK_ENTITIES = [
  WebhookListener,
  WebhookUrl,
  WebhookIdentity,
  WebhookRetiredKey,
  WebhookEvent,
  WebhookDelivery,
  WebhookDeliveryAttempt,
] as const;
