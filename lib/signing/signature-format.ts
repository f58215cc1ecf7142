// Formats of the two signatures, shared by the signer and by the receiver-side verify helpers.
// Imports nothing but node:crypto, so that `nestjs-webhook-listener/verify` stays free of NestJS and TypeORM.
import { createHmac } from 'node:crypto';

export const X_SIGNATURE_ALGORITHM = 'SHA256withECDSA';
export const STANDARD_WEBHOOKS_SECRET_PREFIX = 'whsec_';
export const STANDARD_WEBHOOKS_VERSION = 'v1';

export function formatXSignature(keyId: string, signatureBase64: string): string {
  return `algorithm=${X_SIGNATURE_ALGORITHM}, keyId=${keyId}, signature=${signatureBase64}`;
}

/** Parses `algorithm=…, keyId=…, signature=…`; `null` when any part is missing or repeated. */
export function parseXSignature(header: string): { algorithm: string; keyId: string; signature: string } | null {
  const parts = new Map<string, string>();
  for (const part of header.split(',')) {
    const separator = part.indexOf('=');
    if (separator <= 0) return null;
    const key = part.slice(0, separator).trim();
    if (parts.has(key)) return null;
    parts.set(key, part.slice(separator + 1).trim());
  }
  const [algorithm, keyId, signature] = [parts.get('algorithm'), parts.get('keyId'), parts.get('signature')];
  return algorithm && keyId && signature ? { algorithm, keyId, signature } : null;
}

/** The key bytes of a `whsec_…` secret; `null` when it is not base64 of at least 16 bytes. */
export function decodeStandardWebhooksSecret(secret: string): Buffer | null {
  const encoded = secret.startsWith(STANDARD_WEBHOOKS_SECRET_PREFIX) ? secret.slice(STANDARD_WEBHOOKS_SECRET_PREFIX.length) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return null;
  const key = Buffer.from(encoded, 'base64');
  return key.length >= 16 ? key : null;
}

/** Base64 HMAC-SHA256 of `id.timestamp.body`, as Standard Webhooks signs. */
export function standardWebhooksSignature(key: Buffer, id: string, timestampSec: number, body: Buffer | string): string {
  const hmac = createHmac('sha256', key);
  // A body in text goes in one update with its prefix: a second update adds a quarter to the HMAC's cost.
  if (typeof body === 'string') return hmac.update(`${id}.${timestampSec}.${body}`).digest('base64');
  return hmac.update(`${id}.${timestampSec}.`).update(body).digest('base64');
}
