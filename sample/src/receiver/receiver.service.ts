import { HttpStatus, Injectable, Logger } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import type { WebhookPayload } from 'nestjs-webhook-listener';
import type { ReceivedWebhook } from './received-webhook.js';
import { SignatureVerifier } from './signature-verifier.service.js';

/**
 * The first request carrying this state is answered 503, once: its retry (same `webhook-id`) and
 * every later request get 200. It makes the sender's retry visible.
 */
export const STATE_REFUSED_ONCE = 'SHIPPED';

/** Verifies each webhook, decides the answer and keeps a record of every request, in arrival order. */
@Injectable()
export class ReceiverService {
  private readonly logger = new Logger('Receiver');
  private readonly received: ReceivedWebhook[] = [];
  private refusedOne = false;

  constructor(private readonly verifier: SignatureVerifier) {}

  async receive(headers: IncomingHttpHeaders, rawBody: Buffer): Promise<ReceivedWebhook> {
    const { xSignatureValid, standardWebhooksValid } = await this.verifier.verify(headers, rawBody);
    const verified = xSignatureValid && standardWebhooksValid;
    const webhookId = typeof headers['webhook-id'] === 'string' ? headers['webhook-id'] : null;
    const payload = verified ? (JSON.parse(rawBody.toString('utf8')) as WebhookPayload) : null;
    const record: ReceivedWebhook = {
      sequence: this.received.length + 1,
      receivedAt: new Date().toISOString(),
      webhookId,
      retry: webhookId !== null && this.received.some((earlier) => earlier.webhookId === webhookId),
      xSignatureValid,
      standardWebhooksValid,
      payload,
      answeredStatus: payload ? this.answerTo(payload) : HttpStatus.UNAUTHORIZED,
    };
    this.received.push(record);
    this.log(record);
    return record;
  }

  list(): ReceivedWebhook[] {
    return this.received;
  }

  private answerTo(payload: WebhookPayload): HttpStatus {
    if (!this.refusedOne && payload.state === STATE_REFUSED_ONCE) {
      this.refusedOne = true;
      return HttpStatus.SERVICE_UNAVAILABLE;
    }
    return HttpStatus.OK;
  }

  private log(record: ReceivedWebhook): void {
    const about = record.payload
      ? `${record.payload.listenerEntityTechnicalName} ${record.payload.entityId} ${record.payload.state ?? ''} (event ${record.payload.eventId}, listener ${record.payload.webhookListenerId})`
      : 'a request';
    const id = `webhook-id ${record.webhookId ?? 'missing'}${record.retry ? ', a retry' : ''}`;
    const signatures = `X-Signature ${validity(record.xSignatureValid)}, Standard Webhooks ${validity(record.standardWebhooksValid)}`;
    const message = `#${record.sequence} ${about} [${id}]: ${signatures}; answered ${record.answeredStatus}`;
    if (record.answeredStatus === HttpStatus.UNAUTHORIZED) this.logger.warn(message);
    else this.logger.log(message);
  }
}

function validity(valid: boolean): string {
  return valid ? 'valid' : 'INVALID';
}
