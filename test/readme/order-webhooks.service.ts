import { Injectable } from '@nestjs/common';
import { WebhookIdentityService, WebhookListenerService } from '../../lib/index.js';
import { OrderState } from './order.entity.js';

/** What a receiver needs: the listener it serves and the keys that verify its requests. */
export interface Subscription {
  listenerId: number;
  publicKey: string;
  secret: string;
}

@Injectable()
export class OrderWebhooks {
  constructor(
    private readonly identities: WebhookIdentityService,
    private readonly listeners: WebhookListenerService,
  ) {}

  /** Sends the shipped and cancelled orders of one tenant to `url`. */
  async subscribe(tenantId: number, url: string): Promise<Subscription> {
    const identity = await this.identities.create(tenantId, { name: 'Shop signing key' });
    const listener = await this.listeners.create(tenantId, {
      name: 'Order updates',
      entity: 'Order',
      entityStates: [OrderState.SHIPPED, OrderState.CANCELLED],
      url, // an http(s) address, or the id of a WebhookUrl
      identity: identity.id,
    });
    // Hand both to the receiver: the public key checks X-Signature, the secret the Standard Webhooks signature.
    const secret = await this.identities.revealSecret(tenantId, identity.id);
    return { listenerId: listener.id, publicKey: identity.publicKey, secret };
  }
}
