// Receiver-side checks of webhook signatures. Loads Node's own modules and files of its own only: usable in any Node service.
import { createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { types } from 'node:util';
import { WebhookError } from '../errors/webhook.errors.js';
import {
  decodeStandardWebhooksSecret,
  parseXSignature,
  STANDARD_WEBHOOKS_VERSION,
  standardWebhooksSignature,
  X_SIGNATURE_ALGORITHM,
} from '../signing/signature-format.js';

export type RawBody = string | Buffer | Uint8Array;

/** Headers as Node's `IncomingMessage.headers`, a plain record, or a fetch `Headers`. */
export type WebhookHeaders = Record<string, string | string[] | undefined> | { get(name: string): string | null };

export interface StandardWebhookVerifyOptions {
  /** Largest accepted distance between `webhook-timestamp` and now, in seconds: a finite number, 0 or more. Default 300. */
  toleranceSec?: number;
  /** The current time, for tests: a valid Date. Default `new Date()`. */
  now?: Date;
}

const DEFAULT_TOLERANCE_SEC = 300;

/**
 * Thrown for a key or secret that cannot be a verification key at all: a configuration mistake
 * on the receiver's side, as opposed to a request that does not verify (which gives `false`).
 */
export class WebhookVerificationKeyError extends WebhookError {
  readonly code = 'WEBHOOK_VERIFICATION_KEY';

  constructor(readonly argument: 'publicKey' | 'secret') {
    super(
      argument === 'publicKey'
        ? 'publicKey must be the base64 DER SubjectPublicKeyInfo of an EC P-256 key'
        : 'secret must be a Standard Webhooks secret: "whsec_" followed by base64 of at least 16 bytes',
    );
  }
}

/**
 * Thrown for an option of `verifyStandardWebhook` that cannot be used, a configuration mistake on the
 * receiver's side like a bad key. Refused rather than ignored: a `toleranceSec` of `NaN` (say, from an
 * unset environment variable) or an invalid `now` would make every timestamp pass the check.
 */
export class WebhookVerificationOptionError extends WebhookError {
  readonly code = 'WEBHOOK_VERIFICATION_OPTION';

  constructor(
    readonly option: 'toleranceSec' | 'now',
    given: unknown,
  ) {
    super(
      option === 'toleranceSec'
        ? `toleranceSec must be a finite number of seconds, 0 or more, got ${describe(given)}`
        : `now must be a valid Date, got ${describe(given)}`,
    );
  }
}

/**
 * Checks an `X-Signature` header (`algorithm=SHA256withECDSA, keyId=…, signature=…`) against the
 * raw request body and the identity's public key. `false` for any header or body that does not verify.
 */
export function verifyXSignature(headerValue: unknown, rawBody: RawBody, publicKeyBase64: string): boolean {
  const key = publicKeyFrom(publicKeyBase64);
  const body = bytesOf(rawBody);
  if (typeof headerValue !== 'string' || !body) return false;
  const parsed = parseXSignature(headerValue);
  if (!parsed || parsed.algorithm !== X_SIGNATURE_ALGORITHM) return false;
  const signature = canonicalBase64(parsed.signature);
  if (!signature) return false;
  try {
    return verify('sha256', body, { key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

/**
 * Checks the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`)
 * against the raw body and the `whsec_…` secret. Any `v1` signature in the header may match.
 * `false` for missing or malformed headers, a timestamp outside the tolerance, or no match.
 */
export function verifyStandardWebhook(
  headers: WebhookHeaders,
  rawBody: RawBody,
  secret: string,
  options: StandardWebhookVerifyOptions = {},
): boolean {
  const key = typeof secret === 'string' ? decodeStandardWebhooksSecret(secret) : null;
  if (!key) throw new WebhookVerificationKeyError('secret');
  const toleranceSec = toleranceFrom(options?.toleranceSec);
  const now = nowFrom(options?.now);
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  const body = bytesOf(rawBody);
  if (!id || !timestamp || !signatures || !/^\d{1,12}$/.test(timestamp) || !body) return false;
  const timestampSec = Number(timestamp);
  const nowSec = Math.floor(now.getTime() / 1000);
  if (Math.abs(nowSec - timestampSec) > toleranceSec) return false;

  // Compared as text, as the Standard Webhooks libraries do: another spelling of the same bytes is no match.
  const expected = Buffer.from(`${STANDARD_WEBHOOKS_VERSION},${standardWebhooksSignature(key, id, timestampSec, body)}`);
  return signatures.split(' ').some((entry) => {
    const given = Buffer.from(entry);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

function toleranceFrom(value: unknown): number {
  if (value === undefined) return DEFAULT_TOLERANCE_SEC;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new WebhookVerificationOptionError('toleranceSec', value);
  return value;
}

function nowFrom(value: unknown): Date {
  if (value === undefined) return new Date();
  // Read through Date's own method: a Date of another realm, or one without its prototype, has its time all the same.
  const time = types.isDate(value) ? Date.prototype.getTime.call(value) : Number.NaN;
  if (Number.isNaN(time)) throw new WebhookVerificationOptionError('now', value);
  return new Date(time);
}

function publicKeyFrom(publicKeyBase64: unknown): KeyObject {
  try {
    if (typeof publicKeyBase64 !== 'string') throw new TypeError();
    const key = createPublicKey({ key: Buffer.from(publicKeyBase64, 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new TypeError();
    return key;
  } catch {
    throw new WebhookVerificationKeyError('publicKey');
  }
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (!headers || typeof headers !== 'object') return undefined;
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const value: unknown = (headers as { get(n: string): unknown }).get(name);
    return typeof value === 'string' ? value : undefined;
  }
  const record = headers as Record<string, unknown>;
  const found = Object.keys(record).find((key) => key.toLowerCase() === name);
  const value = found === undefined ? undefined : record[found];
  if (Array.isArray(value)) return value.length === 1 && typeof value[0] === 'string' ? value[0] : undefined;
  return typeof value === 'string' ? value : undefined;
}

/** The bytes of a body given as text or as a Uint8Array (of any realm); `null` for anything else, or a detached buffer. */
function bytesOf(body: unknown): Buffer | null {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (!types.isUint8Array(body)) return null;
  try {
    return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  } catch {
    return null;
  }
}

/** The bytes of base64 text in its one standard spelling (padded, no other characters); `null` for any other text. */
function canonicalBase64(text: string): Buffer | null {
  const bytes = Buffer.from(text, 'base64');
  return bytes.length > 0 && bytes.toString('base64') === text ? bytes : null;
}

function describe(value: unknown): string {
  if (types.isDate(value)) return 'an invalid Date';
  if (typeof value === 'string') return `the string "${value.slice(0, 20)}"`;
  return typeof value === 'number' || value === null || value === undefined ? String(value) : typeof value;
}
