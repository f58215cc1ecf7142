import type { WebhookDeliveryState } from '../model/webhook-delivery.entity.js';

/** SQLite journal modes that write and sync a rollback journal with every commit. */
export const SQLITE_ROLLBACK_JOURNAL_MODES: ReadonlySet<string> = new Set(['delete', 'truncate', 'persist']);

/** Names of the events the module emits (eventemitter2). */
export const WEBHOOK_DELIVERY_SUCCEEDED = 'webhook.delivery.succeeded';
export const WEBHOOK_DELIVERY_FAILED = 'webhook.delivery.failed';
export const WEBHOOK_DELIVERY_ABANDONED = 'webhook.delivery.abandoned';
export const WEBHOOK_LISTENER_DEACTIVATED = 'webhook.listener.deactivated';
export const WEBHOOK_LISTENER_STATE_CHANGED = 'webhook.listener.state-changed';
export const WEBHOOK_URL_STATE_CHANGED = 'webhook.url.state-changed';

export interface WebhookDeliveryEventPayload {
  deliveryId: number;
  eventId: number;
  listenerId: number;
  spaceId: number;
  /** 1 for the first attempt. */
  attempt: number;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  /** The resulting state of the delivery. */
  state: WebhookDeliveryState;
  /** For `webhook.delivery.failed`: when the next attempt is due (epoch ms). */
  nextAttemptAt: number | null;
}

export interface WebhookListenerDeactivatedPayload {
  listenerId: number;
  spaceId: number;
  reason: string;
}

export interface WebhookListenerStateChangedPayload {
  listenerId: number;
  spaceId: number;
  from: string;
  to: string;
}

/** Heard by the module's own parts only, never published: a URL's address as a change of it committed. */
export const URL_ADDRESS_COMMITTED = 'url.address-committed';

export interface UrlAddressCommittedPayload {
  urlId: number;
  address: string;
}

export interface WebhookUrlStateChangedPayload {
  urlId: number;
  spaceId: number;
  from: string;
  to: string;
}
