export type WebhookSignatureScheme = 'x-signature' | 'standard-webhooks';

export interface WebhookDeliveryOptions {
  /** Requests in flight at once, over all URLs. Default 64. */
  concurrency?: number;
  /**
   * Requests in flight at once to one URL, per instance. Default 8; a value above `concurrency` is
   * lowered to it. A URL starts with one request in flight and gets one more with every answer up
   * to this cap; a timeout takes it back to one.
   */
  perUrlConcurrency?: number;
  /** Time allowed for one attempt: connect, headers and body. Default 10 000 ms. */
  timeoutMs?: number;
  /** Delay before each retry, in ms; its length is the number of retries. */
  retrySchedule?: number[];
  /** Deliveries claimed per batch. Default 100. */
  batchSize?: number;
  /** Backstop polling interval; a commit wakes the dispatcher at once. Default 5 000 ms. */
  pollIntervalMs?: number;
  /**
   * How long a claimed delivery stays with one instance before others may take it. Default 60 000 ms
   * or twice `timeoutMs`, whichever is longer; at least `timeoutMs` + 2 000 ms.
   */
  leaseMs?: number;
  /** Bytes of a receiver's response body kept in the attempt log. Default 4 096. */
  maxResponseBytes?: number;
  /** Response statuses after which a delivery is abandoned at once instead of retried. Default []. */
  noRetryStatuses?: number[];
  /** When a listener whose deliveries keep failing is deactivated. */
  deactivateAfter?: {
    /** No success, and no change of the listener, for this long… Default 5 days, at most 100 years. */
    noSuccessForMs?: number;
    /** …and at least this many deliveries abandoned meanwhile. Default 10. */
    abandonedDeliveries?: number;
  };
}

export interface WebhookSchedulerOptions {
  /** How often DELETING objects are finished. Default 10 000 ms. */
  lifecycleIntervalMs?: number;
  /** How often objects past their planned purge date are removed. Default 3 600 000 ms. */
  purgeIntervalMs?: number;
  /** How often old delivery logs are removed. Default 3 600 000 ms. */
  retentionIntervalMs?: number;
}

export interface WebhookSecurityOptions {
  /** Allow deliveries to loopback, private and other non-public addresses. Default false. */
  allowPrivateNetworks?: boolean;
  /** Host names (exact, lower case) exempt from the private-address check. Default []. */
  allowedHosts?: string[];
}

export interface WebhookRetentionOptions {
  /** Time between DELETED and the purge of a listener, URL or identity. Default 30 days, at most 100 years. */
  deletedListenerPurgeAfterMs?: number;
  /** Age after which finished deliveries and their attempts are removed. Default 30 days, at most 100 years. */
  deliveryLogTtlMs?: number;
}

export interface WebhookSigningOptions {
  /**
   * 32-byte key (base64 or 64 hex characters) that encrypts private keys and secrets at rest with
   * AES-256-GCM. Without it they are stored as they are.
   */
  keyEncryptionKey?: string;
  /** Which signatures to send. Default both. */
  schemes?: WebhookSignatureScheme[];
  /**
   * After `WebhookIdentityService.rotate()`, how long requests also carry a Standard Webhooks
   * signature made with the previous secret, so that receivers can switch secrets without a gap.
   * Default 86 400 000 (24 h); 0 stops the old secret at once.
   */
  rotationGraceMs?: number;
}

export interface WebhookWorkerOptions {
  /** `false`: this instance serves the services only and neither delivers nor runs jobs. Default true. */
  enabled?: boolean;
}

export interface WebhookModuleOptions {
  /** Space of entities without a `@WebhookSpace()` property. Default 1. */
  defaultSpaceId?: number;
  delivery?: WebhookDeliveryOptions;
  scheduler?: WebhookSchedulerOptions;
  security?: WebhookSecurityOptions;
  retention?: WebhookRetentionOptions;
  signing?: WebhookSigningOptions;
  worker?: WebhookWorkerOptions;
}

/** Options after validation, with every default filled in. */
export interface ResolvedWebhookOptions {
  defaultSpaceId: number;
  delivery: Required<Omit<WebhookDeliveryOptions, 'deactivateAfter'>> & {
    deactivateAfter: Required<NonNullable<WebhookDeliveryOptions['deactivateAfter']>>;
  };
  scheduler: Required<WebhookSchedulerOptions>;
  security: Required<WebhookSecurityOptions>;
  retention: Required<WebhookRetentionOptions>;
  signing: { keyEncryptionKey: Buffer | null; schemes: WebhookSignatureScheme[]; rotationGraceMs: number };
  worker: Required<WebhookWorkerOptions>;
}
