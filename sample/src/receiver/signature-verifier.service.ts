import { Injectable } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import { verifyStandardWebhook, verifyXSignature } from 'nestjs-webhook-listener/verify';
import { ReceiverKeysService } from './receiver-keys.service.js';

export interface SignatureCheck {
  xSignatureValid: boolean;
  standardWebhooksValid: boolean;
}

const KEY_ID = /keyId=([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/i;

/** Checks both signatures a request carries against the raw body bytes, each on its own. */
@Injectable()
export class SignatureVerifier {
  constructor(private readonly keys: ReceiverKeysService) {}

  async verify(headers: IncomingHttpHeaders, rawBody: Buffer): Promise<SignatureCheck> {
    const keyId = KEY_ID.exec(String(headers['x-signature'] ?? ''))?.[1]?.toLowerCase();
    const keys = keyId ? await this.keys.keysFor(keyId) : null;
    if (!keys) return { xSignatureValid: false, standardWebhooksValid: false };
    return {
      xSignatureValid: verifyXSignature(headers['x-signature'], rawBody, keys.publicKey),
      standardWebhooksValid: verifyStandardWebhook(headers, rawBody, keys.secret),
    };
  }
}
