import type { WebhookPayload } from 'nestjs-webhook-listener';

/** One request that reached the receiver, as it recorded it. */
export interface ReceivedWebhook {
  /** Order of arrival, from 1. */
  sequence: number;
  receivedAt: string;
  /** The Standard Webhooks `webhook-id`: the same on every attempt of one delivery. */
  webhookId: string | null;
  /** Whether a request with the same `webhook-id` came before, i.e. this is a retry. */
  retry: boolean;
  xSignatureValid: boolean;
  standardWebhooksValid: boolean;
  /** The body, parsed only once both signatures verified. */
  payload: WebhookPayload | null;
  /** 200 accepted, 401 signatures did not verify, 503 refused once to show a retry. */
  answeredStatus: number;
}
