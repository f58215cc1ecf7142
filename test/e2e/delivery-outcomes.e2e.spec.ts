import {
  CreationEntityState,
  WEBHOOK_DELIVERY_ABANDONED,
  WEBHOOK_DELIVERY_FAILED,
  WEBHOOK_DELIVERY_SUCCEEDED,
  WEBHOOK_EVENT_EMITTER,
  WEBHOOK_LISTENER_DEACTIVATED,
  WebhookDeliveryService,
  type WebhookDelivery,
  WebhookListenerService,
  WebhookStateError,
  WebhookUrlService,
  type WebhookDeliveryEventPayload,
} from '../../lib/index.js';
import type { EventEmitter2 } from '../../lib/events/event-emitter.js';
import { selectedDatabases } from '../src/databases.js';
import { Order, OrderState } from '../src/order.entity.js';
import { answer, TestReceiver, waitFor, type ReceiverBehaviour } from '../src/receiver.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, type TestApp } from '../src/test-app.js';

const slow: ReceiverBehaviour = (_request, _index, response) => {
  setTimeout(() => response.writableEnded || response.destroyed || response.writeHead(200).end('late'), 1_500);
};
const reset: ReceiverBehaviour = (_request, _index, _response, socket) => socket.destroy();

interface Scenario {
  name: string;
  behaviours: ReceiverBehaviour[];
  outcomes: [string, number | null][];
  finalState: 'SUCCEEDED' | 'ABANDONED';
}

const SCENARIOS: Scenario[] = [
  {
    name: 'two 500s, then 200',
    behaviours: [answer(500), answer(500), answer(200)],
    outcomes: [
      ['HTTP_ERROR', 500],
      ['HTTP_ERROR', 500],
      ['SUCCEEDED', 200],
    ],
    finalState: 'SUCCEEDED',
  },
  {
    name: 'too slow, then 200',
    behaviours: [slow, answer(204)],
    outcomes: [
      ['TIMEOUT', null],
      ['SUCCEEDED', 204],
    ],
    finalState: 'SUCCEEDED',
  },
  {
    name: 'reset connection, then 200',
    behaviours: [reset, answer(200)],
    outcomes: [
      ['NETWORK_ERROR', null],
      ['SUCCEEDED', 200],
    ],
    finalState: 'SUCCEEDED',
  },
  {
    name: '429 with Retry-After, then 200',
    behaviours: [answer(429, 'slow down', { 'retry-after': '1' }), answer(200)],
    outcomes: [
      ['HTTP_ERROR', 429],
      ['SUCCEEDED', 200],
    ],
    finalState: 'SUCCEEDED',
  },
  {
    name: '301 (not followed) until abandoned',
    behaviours: [answer(301, '', { location: '/elsewhere' })],
    outcomes: [
      ['HTTP_ERROR', 301],
      ['HTTP_ERROR', 301],
      ['HTTP_ERROR', 301],
      ['HTTP_ERROR', 301],
    ],
    finalState: 'ABANDONED',
  },
  {
    name: '500 until abandoned',
    behaviours: [answer(500, 'x'.repeat(10_000))],
    outcomes: [
      ['HTTP_ERROR', 500],
      ['HTTP_ERROR', 500],
      ['HTTP_ERROR', 500],
      ['HTTP_ERROR', 500],
    ],
    finalState: 'ABANDONED',
  },
  {
    name: '422, which is never retried',
    behaviours: [answer(422, `x${'é'.repeat(100)}`)],
    outcomes: [['HTTP_ERROR', 422]],
    finalState: 'ABANDONED',
  },
  { name: '410 Gone', behaviours: [answer(410)], outcomes: [['HTTP_ERROR', 410]], finalState: 'ABANDONED' },
];

describe.each(selectedDatabases())('delivery outcomes on %s', (database) => {
  let testApp: TestApp;
  let receiver: TestReceiver;
  const events: { name: string; payload: WebhookDeliveryEventPayload }[] = [];
  const deactivated: unknown[] = [];

  beforeAll(async () => {
    receiver = await new TestReceiver().start();
    receiver.script('/elsewhere', answer(200));
    testApp = await createTestApp(database, {
      webhook: {
        security: { allowPrivateNetworks: true },
        delivery: { pollIntervalMs: 100, timeoutMs: 400, retrySchedule: [50, 50, 50], maxResponseBytes: 100, noRetryStatuses: [422] },
        worker: { enabled: true },
      },
    });
    const emitter = testApp.app.get<EventEmitter2>(WEBHOOK_EVENT_EMITTER);
    for (const name of [WEBHOOK_DELIVERY_SUCCEEDED, WEBHOOK_DELIVERY_FAILED, WEBHOOK_DELIVERY_ABANDONED]) {
      emitter.on(name, (payload: WebhookDeliveryEventPayload) => events.push({ name, payload }));
    }
    emitter.on(WEBHOOK_LISTENER_DEACTIVATED, (payload: unknown) => deactivated.push(payload));
  });
  afterAll(async () => {
    await testApp?.close();
    await receiver?.stop();
  });

  it.each(SCENARIOS)('logs each attempt as it happened: $name', async ({ name, behaviours, outcomes, finalState }) => {
    const space = freshSpace();
    const path = `/${space}/${name.replace(/\W+/g, '-')}`;
    receiver.script(path, ...behaviours);
    const listener = await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
    await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });

    const deliveries = testApp.get(WebhookDeliveryService);
    const [delivery] = await waitFor(async () => {
      const found = await deliveries.searchDeliveries(space, {});
      return found.length === 1 && found[0].state !== 'PENDING' && found;
    }, `delivery of "${name}" to finish`);
    expect(delivery).toMatchObject({ state: finalState, attempts: outcomes.length, leaseOwner: null, listenerId: listener.id });
    expect(delivery.completedAt).toEqual(expect.any(Number));

    const attempts = await deliveries.searchAttempts(space, { orderBys: [{ fieldName: 'attemptNumber', sorting: 'ASC' }] });
    expect(attempts.map((a) => [a.outcome, a.statusCode])).toEqual(outcomes);
    expect(attempts.map((a) => a.attemptNumber)).toEqual(outcomes.map((_, i) => i + 1));
    expect(receiver.to(path)).toHaveLength(outcomes.length);
    for (const attempt of attempts) {
      expect(attempt.responseBody === null || attempt.responseBody.length <= 100).toBe(true);
      expect(attempt.durationMs).toBeGreaterThanOrEqual(0);
    }
    expect(receiver.to('/elsewhere')).toHaveLength(0);

    await waitFor(() => events.filter((e) => e.payload.deliveryId === delivery.id).length === outcomes.length, 'the delivery events');
    const mine = events.filter((e) => e.payload.deliveryId === delivery.id);
    const expectedNames = outcomes.map((_, i) =>
      i < outcomes.length - 1
        ? WEBHOOK_DELIVERY_FAILED
        : finalState === 'SUCCEEDED'
          ? WEBHOOK_DELIVERY_SUCCEEDED
          : WEBHOOK_DELIVERY_ABANDONED,
    );
    expect(mine.map((e) => e.name)).toEqual(expectedNames);
    expect(mine.map((e) => e.payload.attempt)).toEqual(outcomes.map((_, i) => i + 1));

    if (name === '410 Gone') {
      // The event is announced once the deactivation has committed, which another connection may read first.
      await waitFor(
        () => deactivated.some((payload) => (payload as { listenerId: number }).listenerId === listener.id),
        'the listener to be deactivated',
      );
      expect(deactivated).toContainEqual({ listenerId: listener.id, spaceId: space, reason: 'receiver answered 410 Gone' });
      expect((await testApp.get(WebhookListenerService).read(space, listener.id)).state).toBe(CreationEntityState.INACTIVE);
    }
    if (name.startsWith('500 until')) {
      expect(attempts[0].responseBody).toBe('x'.repeat(100));
    }
    if (name.startsWith('422')) {
      // Cut at 100 bytes, inside the 50th "é": the characters kept, without the part of one.
      expect(attempts[0].responseBody).toBe(`x${'é'.repeat(49)}`);
    }
  });

  /** The one delivery of the space, once it is abandoned. */
  async function theAbandonedDelivery(space: number): Promise<WebhookDelivery> {
    const [abandoned] = await waitFor(async () => {
      const found = await testApp.get(WebhookDeliveryService).searchDeliveries(space, {
        filter: { type: 'LEAF', fieldName: 'state', operator: 'EQUALS', value: 'ABANDONED' },
      });
      return found.length === 1 && found;
    }, 'the abandoned delivery');
    return abandoned;
  }

  it('redelivers an abandoned delivery on demand, keeping its earlier attempts', async () => {
    const space = freshSpace();
    const path = `/${space}/redeliver`;
    receiver.script(path, answer(422), answer(200));
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
    await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });
    const deliveries = testApp.get(WebhookDeliveryService);
    const abandoned = await theAbandonedDelivery(space);
    await deliveries.redeliver(space, abandoned.id);
    await waitFor(async () => (await deliveries.searchDeliveries(space, {}))[0].state === 'SUCCEEDED', 'the redelivery');
    expect((await deliveries.searchAttempts(space, {})).map((a) => a.statusCode)).toEqual([422, 200]);
    expect(receiver.to(path).map((r) => r.headers['webhook-id'])).toEqual([`msg_${abandoned.id}`, `msg_${abandoned.id}`]);
  });

  it('retries a redelivery on what its schedule has left: the rest after an early abandonment, none after the last retry', async () => {
    const deliveries = testApp.get(WebhookDeliveryService);
    /** The one delivery of a new space whose receiver answers `behaviours` (the last one repeats), once abandoned. */
    const abandonedDelivery = async (name: string, ...behaviours: ReceiverBehaviour[]) => {
      const space = freshSpace();
      const path = `/${space}/${name}`;
      receiver.script(path, ...behaviours);
      await testApp.get(WebhookListenerService).create(space, { name, entity: 'Order', url: receiver.url(path) });
      await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });
      return { space, path, delivery: await theAbandonedDelivery(space) };
    };
    const abandonedAgain = async (space: number, attempts: number) => {
      await waitFor(async () => {
        const [delivery] = await deliveries.searchDeliveries(space, {});
        return delivery.state === 'ABANDONED' && delivery.attempts === attempts;
      }, `the delivery abandoned after ${attempts} attempts`);
      const attemptsLogged = await deliveries.searchAttempts(space, { orderBys: [{ fieldName: 'attemptNumber', sorting: 'ASC' }] });
      return attemptsLogged.map((attempt) => `${attempt.attemptNumber}:${attempt.statusCode}`);
    };

    const early = await abandonedDelivery('redeliver-early', answer(422), answer(500));
    expect(early.delivery.attempts).toBe(1);
    await deliveries.redeliver(early.space, early.delivery.id);
    expect(await abandonedAgain(early.space, 4)).toEqual(['1:422', '2:500', '3:500', '4:500']);

    const late = await abandonedDelivery('redeliver-late', answer(500));
    expect(late.delivery.attempts).toBe(4);
    await deliveries.redeliver(late.space, late.delivery.id);
    expect(await abandonedAgain(late.space, 5)).toEqual(['1:500', '2:500', '3:500', '4:500', '5:500']);
    expect(receiver.to(late.path)).toHaveLength(5);
  });

  it('refuses to redeliver a delivery whose listener or URL is not ACTIVE, which would be cancelled unsent, and redelivers it once both are', async () => {
    const space = freshSpace();
    const path = `/${space}/redeliver-inactive`;
    receiver.script(path, answer(422), answer(200));
    const listeners = testApp.get(WebhookListenerService);
    const urls = testApp.get(WebhookUrlService);
    const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
    await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });
    const deliveries = testApp.get(WebhookDeliveryService);
    const abandoned = await theAbandonedDelivery(space);

    const inactive = await listeners.update(space, { id: listener.id, version: listener.version, state: 'INACTIVE' });
    await expect(deliveries.redeliver(space, abandoned.id)).rejects.toThrow(
      `WebhookDelivery ${abandoned.id} belongs to WebhookListener ${listener.id}, which is INACTIVE: make it ACTIVE before redelivering`,
    );
    await listeners.update(space, { id: listener.id, version: inactive.version, state: 'ACTIVE' });
    const url = await urls.read(space, abandoned.urlId);
    const inactiveUrl = await urls.update(space, { id: url.id, version: url.version, state: 'INACTIVE' });
    await expect(deliveries.redeliver(space, abandoned.id)).rejects.toThrow(WebhookStateError);
    expect((await deliveries.searchDeliveries(space, {}))[0].state).toBe('ABANDONED');

    await urls.update(space, { id: url.id, version: inactiveUrl.version, state: 'ACTIVE' });
    await deliveries.redeliver(space, abandoned.id);
    await waitFor(async () => (await deliveries.searchDeliveries(space, {}))[0].state === 'SUCCEEDED', 'the redelivery');
    expect(receiver.to(path)).toHaveLength(2);
  });

  it('refuses to redeliver a delivery while an instance is sending it, and redelivers it once that attempt has finished', async () => {
    const space = freshSpace();
    const path = `/${space}/redeliver-in-flight`;
    receiver.script(path, receiver.hold, answer(200));
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
    await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });
    await waitFor(() => receiver.to(path).length === 1, 'the request to be held');
    const deliveries = testApp.get(WebhookDeliveryService);
    const [inFlight] = await deliveries.searchDeliveries(space, {});
    await expect(deliveries.redeliver(space, inFlight.id)).rejects.toThrow(WebhookStateError);

    receiver.releaseHeld();
    await waitFor(async () => (await deliveries.searchDeliveries(space, {}))[0].state === 'SUCCEEDED', 'the held attempt to finish');
    expect(await deliveries.redeliver(space, inFlight.id)).toMatchObject({ state: 'PENDING', leaseUntil: null });
    await waitFor(() => receiver.to(path).length === 2, 'the redelivery');
    await waitFor(async () => (await deliveries.searchAttempts(space, {})).length === 2, 'both attempts in the log');
    expect((await deliveries.searchDeliveries(space, {}))[0]).toMatchObject({ state: 'SUCCEEDED', attempts: 2 });
  });
});
