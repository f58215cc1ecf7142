import type { WebhookEntityRegistry } from '../registry/webhook-entity.registry.js';
import type { StoredIdentityKeys, WebhookSigner } from '../signing/webhook-signer.service.js';
import type { ClaimedDelivery, DeliveryStore } from './delivery.store.js';
import { addToGroup } from './groups.js';
import { buildPayload } from './payload.js';

/** What an attempt sends, but for its URL. */
export interface DeliveryRequest {
  body: string;
  headers: Record<string, string>;
}

export interface PreparedRequest extends DeliveryRequest {
  /** Epoch ms when it was signed; its `webhook-timestamp` is this in whole seconds, rounded down. */
  signedAt: number;
  /** With `x-signature` on, its header as the signing thread makes it; `null` if it could not. */
  xSignature?: Promise<string | null>;
}

/**
 * How long ago a prepared request may have been signed when it is sent. A delivery that waited
 * longer (parked behind its URL's window, say) is signed again as it starts: its `webhook-timestamp`
 * is then at most one less than the second it is handed to the HTTP client; opening a new
 * connection comes after that.
 */
export const PREPARED_REQUEST_MAX_AGE_MS = 1_000;

const webhookIdOf = (delivery: ClaimedDelivery) => `msg_${delivery.id}`;

const isRecent = (prepared: PreparedRequest) => prepared.signedAt >= Date.now() - PREPARED_REQUEST_MAX_AGE_MS;

/** The identity whose keys sign a delivery: its listener's, or its space's default. */
const signingIdentityOf = (delivery: ClaimedDelivery) => (delivery.keyId ? `key ${delivery.keyId}` : `space ${delivery.spaceId}`);

/**
 * Builds the body and headers of claimed deliveries. Those of a claim are prepared together, right
 * after it, one delivery after another: in P1 on SQLite with Standard Webhooks, that took less CPU
 * per delivery than building each request as it started, between the other requests' work. Their
 * ECDSA signatures, with `x-signature` on, are made ahead in the signing thread, a batch per
 * message: made in libuv's thread pool as each request started, they had kept the main thread
 * busy 11–46 µs longer per delivery in P1 (see README, Performance).
 */
export class DeliveryRequests {
  constructor(
    private readonly signer: WebhookSigner,
    private readonly store: DeliveryStore,
    private readonly registry: WebhookEntityRegistry,
  ) {}

  /**
   * Prepares the requests of sendable deliveries: body and headers at once, and with `x-signature`
   * its ECDSA signatures in the signing thread, which `requestOf()` waits for. One whose keys cannot
   * be read or opened is left unprepared: `requestOf()` then meets the error again, where the
   * attempt reports it.
   */
  async prepare(deliveries: readonly ClaimedDelivery[]): Promise<void> {
    const sendable = deliveries.filter((delivery) => delivery.sendable);
    const keysByIdentity = await this.readableKeys(sendable.filter((delivery) => delivery.signed));
    const now = new Date();
    const toSignAhead = new Map<string, ClaimedDelivery[]>();
    for (const delivery of sendable) {
      const identity = signingIdentityOf(delivery);
      const keys = delivery.signed ? keysByIdentity.get(identity) : null;
      // Skipped too: a delivery that started while the keys were read, and built its own request.
      if (keys === undefined || delivery.prepared === null) continue;
      try {
        const body = this.bodyOf(delivery);
        const webhookId = webhookIdOf(delivery);
        const headers = keys
          ? this.signer.headersWithoutXSignature(keys, webhookId, body, now)
          : this.signer.unsignedHeaders(webhookId, now);
        delivery.prepared = { body, headers, signedAt: now.getTime() };
        if (keys && this.signer.signsXSignature) addToGroup(toSignAhead, identity, delivery);
      } catch {
        // Left to requestOf(), which throws the same error for the attempt to report.
      }
    }
    for (const [identity, signed] of toSignAhead) this.signXSignaturesAhead(keysByIdentity.get(identity)!, signed);
  }

  /** Starts the x-signatures of prepared deliveries; where they cannot be started, the requests are left unprepared. */
  private signXSignaturesAhead(keys: StoredIdentityKeys, deliveries: readonly ClaimedDelivery[]): void {
    try {
      const signatures = this.signer.xSignaturesAhead(
        keys,
        deliveries.map((delivery) => delivery.prepared!.body),
      );
      deliveries.forEach((delivery, index) => (delivery.prepared!.xSignature = signatures[index]));
    } catch {
      // A prepared request without its x-signature must not be sent as it is: requestOf() builds these anew.
      deliveries.forEach((delivery) => (delivery.prepared = undefined));
    }
  }

  /**
   * The request of a delivery about to be sent: the prepared one, once its `x-signature` is made,
   * if signed recently enough; else built now.
   */
  async requestOf(delivery: ClaimedDelivery): Promise<DeliveryRequest> {
    const prepared = delivery.prepared;
    delivery.prepared = null;
    const needsXSignature = delivery.signed && this.signer.signsXSignature;
    // Checked again once the x-signature is in: a request whose signature took long is signed anew.
    if (prepared && isRecent(prepared) && (!needsXSignature || (await this.addXSignature(prepared))) && isRecent(prepared)) return prepared;
    const body = prepared?.body ?? this.bodyOf(delivery);
    const webhookId = webhookIdOf(delivery);
    if (!delivery.signed) return { body, headers: this.signer.unsignedHeaders(webhookId) };
    // Signed with the time once the keys are read, which may take a read of the database.
    return { body, headers: await this.signer.headers(await this.keysOf(delivery), webhookId, body) };
  }

  /** Adds the `x-signature` made ahead to a prepared request; `false` if none was started or the signing thread could not make it. */
  private async addXSignature(prepared: PreparedRequest): Promise<boolean> {
    if (!prepared.xSignature) return false;
    const xSignature = await prepared.xSignature;
    if (!xSignature) return false;
    prepared.headers['x-signature'] = xSignature;
    return true;
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
      occurredAt: delivery.eventOccurredAt,
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
