import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { WebhookIdentity, WebhookIdentityService } from 'nestjs-webhook-listener';

export interface VerificationKeys {
  /** Base64 DER public key, for X-Signature. */
  publicKey: string;
  /** `whsec_…`, for Standard Webhooks. */
  secret: string;
}

/**
 * The keys that verify requests signed by one identity, found by the keyId of their X-Signature
 * header. A receiver in another application is given the public key and the secret when it is set
 * up; this one runs inside the sending application, so it reads them through WebhookIdentityService.
 */
@Injectable()
export class ReceiverKeysService {
  private readonly keysByKeyId = new Map<string, VerificationKeys>();

  constructor(
    private readonly identityService: WebhookIdentityService,
    @InjectRepository(WebhookIdentity) private readonly identities: Repository<WebhookIdentity>,
  ) {}

  async keysFor(keyId: string): Promise<VerificationKeys | null> {
    const known = this.keysByKeyId.get(keyId);
    if (known) return known;
    const identity = await this.identities.findOne({ where: { keyId }, select: { id: true, linkedSpaceId: true } });
    if (!identity) return null;
    const { publicKey } = await this.identityService.readPublicKey(keyId);
    const secret = await this.identityService.revealSecret(identity.linkedSpaceId, identity.id);
    const keys = { publicKey, secret };
    this.keysByKeyId.set(keyId, keys);
    return keys;
  }
}
