import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { STANDARD_WEBHOOKS_SECRET_PREFIX } from './signature-format.js';

export interface IdentityKeyMaterial {
  keyId: string;
  /** Base64 of the DER SubjectPublicKeyInfo. */
  publicKey: string;
  /** Base64 of the DER PKCS#8 private key. */
  privateKey: string;
  /** `whsec_` + base64 of 32 random bytes, as Standard Webhooks expects. */
  secret: string;
}

export function generateIdentityKeyMaterial(): IdentityKeyMaterial {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    keyId: randomUUID(),
    publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    privateKey: privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64'),
    secret: STANDARD_WEBHOOKS_SECRET_PREFIX + randomBytes(32).toString('base64'),
  };
}
