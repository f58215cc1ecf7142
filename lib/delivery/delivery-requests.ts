import type { WebhookEntityRegistry } from '../registry/webhook-entity.registry.js';
import type { StoredIdentityKeys, WebhookSigner } from '../signing/webhook-signer.service.js';
import type { ClaimedDelivery, DeliveryStore } from './delivery.store.js';
import { buildPayload } from './payload.js';

/** What an attempt sends, but for its URL. */
export interface DeliveryRequest {
  body: string;
  headers: Record<string, string>;
}

export interface PreparedRequest extends DeliveryRequest {
  /** Epoch ms when it was signed; its `webhook-timestamp` is this in whole seconds, rounded down. */
  signedAt: number;
}

/**
 * How long ago a prepared request may have been signed when it is sent. A delivery that waited
 * longer (parked behind its URL's window, say) is signed again as it starts: its `webhook-timestamp`
 * is then at most one less than the second it is sent in.
 */
export const PREPARED_REQUEST_MAX_AGE_MS = 1_000;

const webhookIdOf = (delivery: ClaimedDelivery) => `msg_${delivery.id}`;

/** The identity whose keys sign a delivery: its listener's, or its space's default. */
const signingIdentityOf = (delivery: ClaimedDelivery) => (delivery.keyId ? `key ${delivery.keyId}` : `space ${delivery.spaceId}`);

/**
 * Builds the body and headers of claimed deliveries. Without `x-signature`, those of a claim are
 * prepared together, right after it, one delivery after another: in P1 on SQLite with Standard
 * Webhooks, that took less CPU per delivery than building each request as it started, between the
 * other requests' work (see README, Performance). With `x-signature`, whose ECDSA signature is
 * made in the thread pool as each request starts, preparing the rest ahead showed no gain, and each
 * request is built as it starts.
 */
export class DeliveryRequests {
  constructor(
    private readonly signer: WebhookSigner,
    private readonly store: DeliveryStore,
    private readonly registry: WebhookEntityRegistry,
  ) {}

  /**
   * Prepares the requests of sendable deliveries, unless `x-signature` is on. One whose keys cannot
   * be read or opened is left unprepared: `requestOf()` then meets the error again, where the
   * attempt reports it.
   */
  async prepare(deliveries: readonly ClaimedDelivery[]): Promise<void> {
    if (this.signer.signsXSignature) return;
    const sendable = deliveries.filter((delivery) => delivery.sendable);
    const keysByIdentity = await this.readableKeys(sendable.filter((delivery) => delivery.signed));
    const now = new Date();
    for (const delivery of sendable) {
      const keys = delivery.signed ? keysByIdentity.get(signingIdentityOf(delivery)) : null;
      // Skipped too: a delivery that started while the keys were read, and built its own request.
      if (keys === undefined || delivery.prepared === null) continue;
      try {
        const body = this.bodyOf(delivery);
        const webhookId = webhookIdOf(delivery);
        const headers = keys
          ? this.signer.headersWithoutXSignature(keys, webhookId, body, now)
          : this.signer.unsignedHeaders(webhookId, now);
        delivery.prepared = { body, headers, signedAt: now.getTime() };
      } catch {
        // Left to requestOf(), which throws the same error for the attempt to report.
      }
    }
  }

  /** The request of a delivery about to be sent: the prepared one if signed recently enough, else built now. */
  async requestOf(delivery: ClaimedDelivery): Promise<DeliveryRequest> {
    const prepared = delivery.prepared;
    delivery.prepared = null;
    if (prepared && prepared.signedAt >= Date.now() - PREPARED_REQUEST_MAX_AGE_MS) return prepared;
    const body = prepared?.body ?? this.bodyOf(delivery);
    const webhookId = webhookIdOf(delivery);
    if (!delivery.signed) return { body, headers: this.signer.unsignedHeaders(webhookId) };
    // Signed with the time once the keys are read, which may take a read of the database.
    return { body, headers: await this.signer.headers(await this.keysOf(delivery), webhookId, body) };
  }

  private bodyOf(delivery: ClaimedDelivery): string {
    return buildPayload({
      eventId: delivery.eventId,
      entityId: delivery.entityId,
      numericEntityId: this.registry.find(delivery.entityName)?.numericId ?? false,
      listenerEntityId: delivery.listenerEntityId,
      entityName: delivery.entityName,
      spaceId: delivery.spaceId,
      listenerId: delivery.listenerId,
      createdOn: delivery.eventCreatedOn,
      state: delivery.state,
      includeState: delivery.signed,
    });
  }

  private keysOf(delivery: ClaimedDelivery): Promise<StoredIdentityKeys> {
    return delivery.keyId ? this.store.identityKeys(delivery.keyId) : this.store.spaceDefaultKeys(delivery.spaceId);
  }

  /** The keys of the deliveries' signing identities, each read once; those that could not be read are left out. */
  private async readableKeys(deliveries: readonly ClaimedDelivery[]): Promise<Map<string, StoredIdentityKeys>> {
    const reads = new Map<string, Promise<StoredIdentityKeys | null>>();
    for (const delivery of deliveries) {
      const identity = signingIdentityOf(delivery);
      if (reads.has(identity)) continue;
      // A failed read is caught here at once, so that no rejection waits unhandled while others are awaited.
      reads.set(
        identity,
        this.keysOf(delivery).catch(() => null),
      );
    }
    const keys = new Map<string, StoredIdentityKeys>();
    for (const [identity, read] of reads) {
      const found = await read;
      if (found) keys.set(identity, found);
    }
    return keys;
  }
}
