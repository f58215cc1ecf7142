import { Pool, request } from 'undici';
import type {
  CreateWebhookListenerInput,
  WebhookDelivery,
  WebhookDeliveryAttempt,
  WebhookIdentity,
  WebhookListener,
} from 'nestjs-webhook-listener';
import type { Order } from '../orders/order.entity.js';
import type { OrderState } from '../orders/order-state.js';
import type { ReceivedWebhook } from '../receiver/received-webhook.js';
import { DemoFailure } from './demo-failure.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** The sample's HTTP API, as the demo (or any client) calls it. */
export class SampleApiClient {
  private readonly connections: Pool;

  constructor(readonly baseUrl: string) {
    this.connections = new Pool(baseUrl);
  }

  createIdentity(tenantId: number, name: string): Promise<WebhookIdentity> {
    return this.call('POST', `/tenants/${tenantId}/identities`, { name });
  }

  createListener(tenantId: number, input: CreateWebhookListenerInput): Promise<WebhookListener> {
    return this.call('POST', `/tenants/${tenantId}/listeners`, input);
  }

  deleteListener(tenantId: number, id: number): Promise<WebhookListener> {
    return this.call('DELETE', `/tenants/${tenantId}/listeners/${id}`);
  }

  createOrder(tenantId: number, customer: string): Promise<Order> {
    return this.call('POST', `/tenants/${tenantId}/orders`, { customer });
  }

  moveOrder(tenantId: number, id: number, state: OrderState): Promise<Order> {
    return this.call('PUT', `/tenants/${tenantId}/orders/${id}/state`, { state });
  }

  deliveries(tenantId: number, listenerId?: number): Promise<WebhookDelivery[]> {
    return this.call('GET', `/tenants/${tenantId}/deliveries${listenerId === undefined ? '' : `?listenerId=${listenerId}`}`);
  }

  attempts(tenantId: number, listenerId: number): Promise<WebhookDeliveryAttempt[]> {
    return this.call('GET', `/tenants/${tenantId}/attempts?listenerId=${listenerId}`);
  }

  receivedRequests(): Promise<ReceivedWebhook[]> {
    return this.call('GET', '/receiver/requests');
  }

  close(): Promise<void> {
    return this.connections.close();
  }

  private async call<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const response = await request(new URL(path, this.baseUrl), {
      method,
      dispatcher: this.connections,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    const text = await response.body.text();
    if (response.statusCode >= 300) throw new DemoFailure(`${method} ${path} answered ${response.statusCode}: ${text}`);
    return JSON.parse(text) as T;
  }
}
