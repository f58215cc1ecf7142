import { HttpStatus } from '@nestjs/common';
import type { WebhookDelivery, WebhookDeliveryAttempt, WebhookListener } from 'nestjs-webhook-listener';
import type { Order } from '../orders/order.entity.js';
import { OrderState } from '../orders/order-state.js';
import type { ReceivedWebhook } from '../receiver/received-webhook.js';
import { STATE_REFUSED_ONCE } from '../receiver/receiver.service.js';
import { check } from './demo-failure.js';
import type { SampleApiClient } from './sample-api.client.js';
import { heading, say, style, table } from './terminal.js';
import { waitFor } from './wait-for.js';

const TENANT = 7;
const TENANT_WITHOUT_LISTENER = 8;
const LISTENED_STATES = [OrderState.CONFIRMED, OrderState.SHIPPED, OrderState.CANCELLED];

export interface DemoSummary {
  deliveries: number;
  requests: number;
  retries: number;
}

/** The story the demo tells, one HTTP call at a time, checking after each step that what should happen did. */
export class DemoScenario {
  /** What the receiver got so far, in arrival order. */
  private readonly received: ReceivedWebhook[] = [];

  constructor(private readonly api: SampleApiClient) {}

  async run(): Promise<DemoSummary> {
    const listener = await this.subscribe();
    await this.changeOrders();
    const deliveries = await this.showDeliveryLog(listener);
    await this.unsubscribe(listener);
    return {
      deliveries: deliveries.length,
      requests: this.received.length,
      retries: this.received.filter((request) => request.retry).length,
    };
  }

  private async subscribe(): Promise<WebhookListener> {
    heading(`1. Tenant ${TENANT} subscribes a receiver to its orders`);
    const identity = await this.api.createIdentity(TENANT, 'Shop signing key');
    say(`POST /tenants/${TENANT}/identities → identity ${identity.id}, keyId ${identity.keyId}`);
    const url = `${this.api.baseUrl}/receiver`;
    const listener = await this.api.createListener(TENANT, {
      name: 'Order updates',
      entity: 'Order',
      entityStates: LISTENED_STATES,
      url,
      identity: identity.id,
    });
    say(`POST /tenants/${TENANT}/listeners → listener ${listener.id}: Order in ${LISTENED_STATES.join(', ')} → ${url}`);
    return listener;
  }

  private async changeOrders(): Promise<void> {
    heading('2. Orders change state; the receiver verifies every webhook it gets');
    say(style.dim(`(the receiver answers 503 to the first ${STATE_REFUSED_ONCE} webhook, once, so that a retry shows)`));
    const first = await this.createOrder(TENANT, 'Ada', 'not a state the listener wants: nothing is sent');
    await this.move(first, OrderState.CONFIRMED);
    await this.move(first, OrderState.SHIPPED);
    const second = await this.createOrder(TENANT, 'Grace');
    await this.move(second, OrderState.CANCELLED);
    const third = await this.createOrder(TENANT, 'Linus');
    await this.move(third, OrderState.CONFIRMED);
    await this.changeOrderWithoutListener();
  }

  private async createOrder(tenantId: number, customer: string, note?: string): Promise<Order> {
    const order = await this.api.createOrder(tenantId, customer);
    say(`POST /tenants/${tenantId}/orders → order ${order.id} for ${customer}, ${order.state}${note ? style.dim(` (${note})`) : ''}`);
    return order;
  }

  /** Moves an order to a listened state and waits for its webhook (twice for the one refused once). */
  private async move(order: Order, state: OrderState): Promise<void> {
    await this.api.moveOrder(order.tenantId, order.id, state);
    say(`PUT /tenants/${order.tenantId}/orders/${order.id}/state → ${state}`);
    const refusedFirst = state === STATE_REFUSED_ONCE && !this.received.some(isRefusal);
    const requests = await this.nextRequests(refusedFirst ? 2 : 1);
    for (const request of requests) {
      this.print(request);
      checkVerified(request);
      check(
        request.payload.entityId === order.id && request.payload.state === state,
        `request #${request.sequence} is about Order ${request.payload.entityId} ${request.payload.state}, expected Order ${order.id} ${state}`,
      );
    }
    if (refusedFirst) checkRefusalAndRetry(requests[0], requests[1]);
    else check(requests[0].answeredStatus === HttpStatus.OK, `request #${requests[0].sequence} was answered ${requests[0].answeredStatus}`);
  }

  /** Deliveries are recorded in the transaction of the change itself, so a count right after it is final. */
  private async changeOrderWithoutListener(): Promise<void> {
    const before = await this.api.deliveries(TENANT_WITHOUT_LISTENER);
    const order = await this.createOrder(TENANT_WITHOUT_LISTENER, 'Edsger');
    await this.api.moveOrder(order.tenantId, order.id, OrderState.CONFIRMED);
    const after = await this.api.deliveries(TENANT_WITHOUT_LISTENER);
    say(
      `PUT /tenants/${order.tenantId}/orders/${order.id}/state → CONFIRMED` +
        style.dim(` (tenant ${order.tenantId} has no listener: ${after.length - before.length} deliveries recorded)`),
    );
    check(after.length === before.length, `an order of tenant ${order.tenantId} was delivered although no listener of that tenant exists`);
  }

  private async nextRequests(count: number): Promise<ReceivedWebhook[]> {
    const from = this.received.length;
    const requests = await waitFor(`request ${from + count} at the receiver`, async () => {
      const all = await this.api.receivedRequests();
      return all.length >= from + count ? all.slice(from, from + count) : undefined;
    });
    this.received.push(...requests);
    return requests;
  }

  private async showDeliveryLog(listener: WebhookListener): Promise<WebhookDelivery[]> {
    heading(`3. The delivery log of listener ${listener.id} (WebhookDeliveryService)`);
    const expected = new Set(this.received.map((request) => request.webhookId)).size;
    const deliveries = await waitFor(`${expected} SUCCEEDED deliveries in the log`, async () => {
      const found = await this.api.deliveries(TENANT, listener.id);
      return found.length === expected && found.every((delivery) => delivery.state === 'SUCCEEDED') ? found : undefined;
    });
    say(`GET /tenants/${TENANT}/deliveries?listenerId=${listener.id}`);
    table([
      ['delivery', 'event', 'change', 'state', 'attempts'],
      ...deliveries.map((delivery) => [
        String(delivery.id),
        String(delivery.eventId),
        this.describeEvent(delivery.eventId),
        style.green(delivery.state),
        String(delivery.attempts),
      ]),
    ]);

    const attempts = await this.api.attempts(TENANT, listener.id);
    say(`GET /tenants/${TENANT}/attempts?listenerId=${listener.id}`);
    table([
      ['attempt', 'delivery', 'try', 'outcome', 'status', 'duration'],
      ...attempts.map((attempt) => [
        String(attempt.id),
        String(attempt.deliveryId),
        String(attempt.attemptNumber),
        attempt.outcome === 'SUCCEEDED' ? style.green(attempt.outcome) : style.yellow(attempt.outcome),
        String(attempt.statusCode ?? '-'),
        `${attempt.durationMs} ms`,
      ]),
    ]);
    checkAttemptLog(attempts, this.received.length);
    return deliveries;
  }

  private async unsubscribe(listener: WebhookListener): Promise<void> {
    heading('4. Clean-up');
    const deleted = await this.api.deleteListener(TENANT, listener.id);
    say(`DELETE /tenants/${TENANT}/listeners/${listener.id} → ${deleted.state} ${style.dim('(the module finishes it to DELETED)')}`);
  }

  private describeEvent(eventId: number): string {
    const payload = this.received.find((request) => request.payload?.eventId === eventId)?.payload;
    return payload ? `${payload.listenerEntityTechnicalName} ${payload.entityId} → ${payload.state}` : '?';
  }

  private print(request: ReceivedWebhook): void {
    const refused = request.answeredStatus !== HttpStatus.OK;
    const mark = refused ? style.red('✗') : style.green('✓');
    const about = request.payload
      ? `${request.payload.listenerEntityTechnicalName} ${request.payload.entityId} ${request.payload.state}`
      : 'a request';
    const signatures = `X-Signature ${validity(request.xSignatureValid)}, Standard Webhooks ${validity(request.standardWebhooksValid)}`;
    const answer = refused ? style.yellow(`answered ${request.answeredStatus}`) : `answered ${request.answeredStatus}`;
    say(
      `  ${mark} received #${request.sequence}: ${style.bold(about)}, webhook-id ${request.webhookId}; ${signatures}; ${answer}${this.noteOn(request)}`,
    );
  }

  private noteOn(request: ReceivedWebhook): string {
    if (request.answeredStatus === HttpStatus.SERVICE_UNAVAILABLE) return style.dim(' (refused once on purpose)');
    if (!request.retry) return '';
    const refusal = this.received.find((earlier) => earlier.webhookId === request.webhookId && earlier.sequence < request.sequence);
    const seconds = refusal ? (Date.parse(request.receivedAt) - Date.parse(refusal.receivedAt)) / 1000 : NaN;
    return style.cyan(` (retry of #${refusal?.sequence}, ${seconds.toFixed(1)} s later)`);
  }
}

function isRefusal(request: ReceivedWebhook): boolean {
  return request.answeredStatus === HttpStatus.SERVICE_UNAVAILABLE;
}

function validity(valid: boolean): string {
  return valid ? style.green('valid') : style.red('INVALID');
}

function checkVerified(
  request: ReceivedWebhook,
): asserts request is ReceivedWebhook & { payload: NonNullable<ReceivedWebhook['payload']> } {
  check(
    request.xSignatureValid && request.standardWebhooksValid && request.payload !== null,
    `request #${request.sequence} did not verify: X-Signature ${request.xSignatureValid}, Standard Webhooks ${request.standardWebhooksValid}`,
  );
}

function checkRefusalAndRetry(refused: ReceivedWebhook, retry: ReceivedWebhook): void {
  check(isRefusal(refused), `request #${refused.sequence} should have been refused with 503, was answered ${refused.answeredStatus}`);
  check(
    retry.retry && retry.webhookId === refused.webhookId && retry.answeredStatus === HttpStatus.OK,
    `request #${retry.sequence} should be the accepted retry of #${refused.sequence} (webhook-id ${refused.webhookId})`,
  );
}

/** One attempt per request the receiver got: the refused one as HTTP_ERROR 503, followed by a successful second try. */
function checkAttemptLog(attempts: WebhookDeliveryAttempt[], requests: number): void {
  check(attempts.length === requests, `the attempt log lists ${attempts.length} attempts, the receiver got ${requests} requests`);
  const failed = attempts.filter((attempt) => attempt.outcome !== 'SUCCEEDED');
  check(
    failed.length === 1 && failed[0].outcome === 'HTTP_ERROR' && failed[0].statusCode === 503 && failed[0].attemptNumber === 1,
    `the attempt log should hold exactly one failed attempt, HTTP_ERROR 503 on the first try; it holds ${failed.length}`,
  );
  const retried = attempts.find((attempt) => attempt.deliveryId === failed[0].deliveryId && attempt.attemptNumber === 2);
  check(
    retried?.outcome === 'SUCCEEDED' && retried.statusCode === 200,
    `delivery ${failed[0].deliveryId} has no successful second attempt`,
  );
}
