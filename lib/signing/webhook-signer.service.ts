import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { Inject, Injectable } from '@nestjs/common';
import { setNewest } from '../caching/bounded-map.js';
import { WEBHOOK_RESOLVED_OPTIONS } from '../module/webhook.constants.js';
import type { ResolvedWebhookOptions, WebhookSignatureScheme } from '../module/webhook-options.interface.js';
import { EcdsaSigningWorker } from './ecdsa-signing.worker.js';
import { KeyEncryptionService } from './key-encryption.service.js';
import {
  decodeStandardWebhooksSecret,
  formatXSignature,
  STANDARD_WEBHOOKS_VERSION,
  standardWebhooksSignature,
} from './signature-format.js';

/** An identity's key material as stored (private parts possibly sealed). */
export interface StoredIdentityKeys {
  keyId: string;
  privateKey: string;
  secret: string;
  /** Secrets of the identity's retired keys that still sign beside the current one after a rotation. */
  retiredSecrets?: RetiredSecret[];
}

export interface RetiredSecret {
  keyId: string;
  /** Sealed as stored, under its own key id. */
  secret: string;
  /** Epoch ms until which it signs. */
  signsUntil: number;
}

interface OpenedKeys {
  keyId: string;
  privateKey: KeyObject;
  hmacKey: Buffer;
}

const signInPool = promisify(sign);

/** How long opened keys are kept in memory; a rotated identity is picked up within this time. */
const OPENED_KEYS_TTL_MS = 60_000;
/** Identities whose opened keys are kept at most: those opened last. */
const OPENED_KEYS_MAX = 10_000;

/**
 * Bodies per message to the ECDSA signing thread: small enough that the first requests of a claim
 * wait for a few signatures only, large enough that messages cost the event loop little.
 */
const X_SIGNATURE_BATCH_SIZE = 64;

/** Signs request bodies with both schemes; keeps opened keys briefly, since unsealing costs more than signing. */
@Injectable()
export class WebhookSigner {
  private readonly schemes: ReadonlySet<WebhookSignatureScheme>;
  private readonly opened = new Map<string, { keys: OpenedKeys; expiresAt: number }>();
  private readonly openedRetired = new Map<string, Buffer>();

  constructor(
    @Inject(WEBHOOK_RESOLVED_OPTIONS) options: ResolvedWebhookOptions,
    private readonly keyEncryption: KeyEncryptionService,
    private readonly ecdsaWorker: EcdsaSigningWorker,
  ) {
    this.schemes = new Set(options.signing.schemes);
  }

  /** Signature headers for one attempt; `webhookId` stays the same on every retry of a delivery. */
  async headers(stored: StoredIdentityKeys, webhookId: string, body: string, now: Date = new Date()): Promise<Record<string, string>> {
    const keys = this.open(stored);
    const headers = this.unsignedHeaders(webhookId, now);
    if (this.signsXSignature) headers['x-signature'] = await this.xSignature(keys, body);
    return this.withStandardWebhooksSignature(headers, keys, stored, webhookId, body, now);
  }

  /** Whether requests carry an `x-signature`, which `headers()` and `xSignaturesAhead()` make and `headersWithoutXSignature()` leaves out. */
  get signsXSignature(): boolean {
    return this.schemes.has('x-signature');
  }

  /**
   * The headers of `headers()` but the `x-signature`, made at once: the id and time receivers drop
   * duplicates by, and the Standard Webhooks signatures when that scheme is on.
   */
  headersWithoutXSignature(stored: StoredIdentityKeys, webhookId: string, body: string, now: Date = new Date()): Record<string, string> {
    return this.withStandardWebhooksSignature(this.unsignedHeaders(webhookId, now), this.open(stored), stored, webhookId, body, now);
  }

  /**
   * The `x-signature` headers of `bodies`, made ahead in the ECDSA signing thread, in their order;
   * each resolves to `null` if the thread could not make it (the request is then signed as it starts).
   */
  xSignaturesAhead(stored: StoredIdentityKeys, bodies: readonly string[]): Promise<string | null>[] {
    const keys = this.open(stored);
    const signatures: Promise<string | null>[] = [];
    for (let start = 0; start < bodies.length; start += X_SIGNATURE_BATCH_SIZE) {
      const chunk = bodies.slice(start, start + X_SIGNATURE_BATCH_SIZE);
      const batch = this.ecdsaWorker.sign(keys.privateKey, chunk);
      for (let index = 0; index < chunk.length; index++)
        signatures.push(
          batch.then(
            (made) => formatXSignature(keys.keyId, made[index]!),
            () => null,
          ),
        );
    }
    return signatures;
  }

  private withStandardWebhooksSignature(
    headers: Record<string, string>,
    keys: OpenedKeys,
    stored: StoredIdentityKeys,
    webhookId: string,
    body: string,
    now: Date,
  ): Record<string, string> {
    if (!this.schemes.has('standard-webhooks')) return headers;
    const timestamp = Math.floor(now.getTime() / 1000);
    const signingKeys = [keys.hmacKey, ...this.retiredHmacKeys(stored.retiredSecrets ?? [], now.getTime())];
    headers['webhook-signature'] = signingKeys
      .map((hmacKey) => `${STANDARD_WEBHOOKS_VERSION},${standardWebhooksSignature(hmacKey, webhookId, timestamp, body)}`)
      .join(' ');
    return headers;
  }

  /**
   * For a request built as it starts (none made ahead, or made too long ago). Made in libuv's thread
   * pool: an ECDSA signature costs more CPU than the request it is sent with, and the event loop has
   * the other requests to drive meanwhile.
   */
  private async xSignature(keys: OpenedKeys, body: string): Promise<string> {
    const signature = await signInPool('sha256', Buffer.from(body), { key: keys.privateKey, dsaEncoding: 'der' });
    return formatXSignature(keys.keyId, signature.toString('base64'));
  }

  /** Without signing, receivers still get the id and time Standard Webhooks uses to drop duplicates. */
  unsignedHeaders(webhookId: string, now: Date = new Date()): Record<string, string> {
    return { 'webhook-id': webhookId, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)) };
  }

  /** The HMAC keys of retired secrets still within their grace period, opened once per key id. */
  private retiredHmacKeys(retired: RetiredSecret[], now: number): Buffer[] {
    return retired
      .filter((secret) => secret.signsUntil > now)
      .map((secret) => {
        let hmacKey = this.openedRetired.get(secret.keyId);
        if (!hmacKey) {
          hmacKey = decodeStandardWebhooksSecret(this.keyEncryption.open(secret.secret, secret.keyId))!;
          setNewest(this.openedRetired, secret.keyId, hmacKey, OPENED_KEYS_MAX);
        }
        return hmacKey;
      });
  }

  forget(identityKeyId: string): void {
    this.opened.delete(identityKeyId);
  }

  private open(stored: StoredIdentityKeys): OpenedKeys {
    const cached = this.opened.get(stored.keyId);
    if (cached && cached.expiresAt > Date.now()) return cached.keys;
    const privateDer = this.keyEncryption.open(stored.privateKey, stored.keyId);
    const keys: OpenedKeys = {
      keyId: stored.keyId,
      privateKey: createPrivateKey({ key: Buffer.from(privateDer, 'base64'), format: 'der', type: 'pkcs8' }),
      hmacKey: decodeStandardWebhooksSecret(this.keyEncryption.open(stored.secret, stored.keyId))!,
    };
    setNewest(this.opened, stored.keyId, { keys, expiresAt: Date.now() + OPENED_KEYS_TTL_MS }, OPENED_KEYS_MAX);
    return keys;
  }
}
