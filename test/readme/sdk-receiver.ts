import type { IncomingHttpHeaders } from 'node:http';
import { EncryptionUtil } from 'postfinancecheckout';
import { Webhook } from 'standardwebhooks';

// #region x-signature
/** X-Signature with the PostFinance Checkout SDK and the identity's public key. */
export function isXSignatureValid(xSignature: string, rawBody: Buffer, publicKey: string): boolean {
  const signature = /, signature=([A-Za-z0-9+/=]+)$/.exec(xSignature)?.[1];
  if (!signature) return false;
  try {
    return EncryptionUtil.isContentValid(rawBody.toString('utf8'), signature, publicKey);
  } catch {
    return false; // the SDK throws for a signature or key it cannot read
  }
}
// #endregion

// #region standard-webhooks
/** The Standard Webhooks headers with the `standardwebhooks` package and the identity's secret. */
export function isStandardWebhookValid(headers: IncomingHttpHeaders, rawBody: Buffer, secret: string): boolean {
  try {
    new Webhook(secret).verify(rawBody, {
      'webhook-id': String(headers['webhook-id']),
      'webhook-timestamp': String(headers['webhook-timestamp']),
      'webhook-signature': String(headers['webhook-signature']),
    });
    return true;
  } catch {
    return false; // WebhookVerificationError: wrong signature, or a timestamp more than 5 minutes off
  }
}
// #endregion
