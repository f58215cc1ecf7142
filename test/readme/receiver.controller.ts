import { Controller, Headers, HttpCode, HttpStatus, Inject, Post, RawBody, UnauthorizedException } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import type { WebhookPayload } from '../../lib/index.js';
import { verifyStandardWebhook, verifyXSignature } from '../../lib/verify/index.js';

/** What the sending application handed over when it subscribed this receiver. */
export interface ShopKeys {
  publicKey: string;
  secret: string;
}

export const SHOP_KEYS = Symbol('SHOP_KEYS');

@Controller('webhooks')
export class ShopWebhookController {
  /** The changes received; an application acts on each one instead. */
  readonly received: WebhookPayload[] = [];

  constructor(@Inject(SHOP_KEYS) private readonly keys: ShopKeys) {}

  @Post('orders')
  @HttpCode(HttpStatus.NO_CONTENT)
  receive(@Headers() headers: IncomingHttpHeaders, @RawBody() rawBody: Buffer): void {
    // Check the bytes that were signed: the raw body, before any JSON parsing.
    const xSignatureValid = verifyXSignature(headers['x-signature'], rawBody, this.keys.publicKey);
    const standardWebhooksValid = verifyStandardWebhook(headers, rawBody, this.keys.secret);
    if (!xSignatureValid || !standardWebhooksValid) throw new UnauthorizedException('webhook signature does not verify');
    // A delivery can arrive twice: drop repeats by their webhook-id header.
    this.received.push(JSON.parse(rawBody.toString('utf8')) as WebhookPayload);
  }
}
