import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { WebhookConfigurationError } from '../errors/webhook.errors.js';
import { WEBHOOK_RESOLVED_OPTIONS } from '../module/webhook.constants.js';
import type { ResolvedWebhookOptions } from '../module/webhook-options.interface.js';
import { generateIdentityKeyMaterial } from './key-material.js';

const ENCRYPTED_PREFIX = 'enc:v1:';
const GCM_TAG_BYTES = 16;
const IV_BYTES = 12;

/**
 * Seals private keys and secrets with AES-256-GCM when `signing.keyEncryptionKey` is set. The
 * identity's key id is bound in as associated data, so a sealed value copied to another identity
 * does not open.
 */
@Injectable()
export class KeyEncryptionService {
  private readonly key: Buffer | null;

  constructor(@Inject(WEBHOOK_RESOLVED_OPTIONS) options: ResolvedWebhookOptions) {
    this.key = options.signing.keyEncryptionKey;
  }

  /** Fresh key material for a new identity, with its private parts sealed for storage. */
  newSealedKeys(): { keyId: string; publicKey: string; privateKey: string; secret: string } {
    const keys = generateIdentityKeyMaterial();
    return { ...keys, privateKey: this.seal(keys.privateKey, keys.keyId), secret: this.seal(keys.secret, keys.keyId) };
  }

  seal(plain: string, keyId: string): string {
    if (!this.key) return plain;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: GCM_TAG_BYTES }).setAAD(Buffer.from(keyId));
    const sealed = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${ENCRYPTED_PREFIX}${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${sealed.toString('base64')}`;
  }

  open(stored: string, keyId: string): string {
    if (!stored.startsWith(ENCRYPTED_PREFIX)) return stored;
    if (!this.key) {
      throw new WebhookConfigurationError('option signing.keyEncryptionKey', 'is needed: this identity was stored encrypted');
    }
    const [iv, tag, sealed] = stored.slice(ENCRYPTED_PREFIX.length).split(':');
    try {
      // The whole 16-byte tag: a shorter one would be taken as it is, and authenticate far less.
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'), { authTagLength: GCM_TAG_BYTES })
        .setAAD(Buffer.from(keyId))
        .setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(sealed, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new WebhookConfigurationError(
        'option signing.keyEncryptionKey',
        'does not open the stored key material (was the key changed?)',
      );
    }
  }
}
