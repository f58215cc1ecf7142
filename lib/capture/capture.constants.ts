/** Emitted (eventemitter2) after a transaction that recorded webhook events commits. */
export const WEBHOOK_EVENTS_COMMITTED = 'webhook.events.committed';

/** How long this instance trusts its cached list of matching listeners for changes made elsewhere. */
export const LISTENER_CACHE_TTL_MS = 5_000;

/** Cached (space, entity) pairs at most; the oldest go first. */
export const LISTENER_CACHE_MAX_ENTRIES = 10_000;

export interface WebhookEventsCommittedPayload {
  /** Events recorded by the transaction. */
  events: number;
  /** Deliveries recorded by the transaction. */
  deliveries: number;
}
