import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { DataSource, In, type DataSourceOptions } from 'typeorm';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import {
  WEBHOOK_DELIVERY_SUCCEEDED,
  WEBHOOK_EVENT_EMITTER,
  WEBHOOK_LISTENER_DEACTIVATED,
  WEBHOOK_LISTENER_STATE_CHANGED,
  WEBHOOK_URL_STATE_CHANGED,
  WebhookDelivery,
  WebhookDeliveryService,
  WebhookDeliveryState,
  WebhookIdentityService,
  WebhookListener,
  WebhookListenerService,
  WebhookConfigurationError,
  CreationEntityState,
  WebhookStateError,
  WebhookUrl,
  WebhookUrlService,
  WebhookValidationError,
  type WebhookListenerDeactivatedPayload,
  type WebhookModuleOptions,
} from '../../lib/index.js';
import type { EventEmitter2 } from '../../lib/events/event-emitter.js';
import { WebhookDispatcher } from '../../lib/delivery/webhook-dispatcher.service.js';
import { ListenerHealthService } from '../../lib/delivery/listener-health.service.js';
import { DeliveryStore, REFUSED_TEXT_NOTE, type ClaimedDelivery, type FinishedAttempt } from '../../lib/delivery/delivery.store.js';
import { WebhookAttemptOutcome } from '../../lib/model/webhook-delivery-attempt.entity.js';
import { connectionOptions, selectedDatabases, type TestDatabase } from '../src/databases.js';
import { Order, OrderState, Parcel, ParcelState } from '../src/order.entity.js';
import { answer, answerAfter, TestReceiver, waitFor, type ReceiverBehaviour } from '../src/receiver.js';
import { LogCollector } from '../src/log-collector.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, succeededDeliveries, type TestApp } from '../src/test-app.js';

const WORKER: WebhookModuleOptions = { worker: { enabled: true }, delivery: { pollIntervalMs: 100, retrySchedule: [50, 50] } };
/** A worker whose failed attempt is retried after a second: time to change rows by hand in between. */
const RETRYING_AFTER_A_SECOND: WebhookModuleOptions = {
  ...WORKER,
  security: { allowPrivateNetworks: true },
  delivery: { pollIntervalMs: 100, retrySchedule: [1_000] },
};

/** Deletes a row the way a host would by hand, behind the module's back. */
async function removeByHand(app: TestApp, database: TestDatabase, table: string, id: number): Promise<void> {
  await app.dataSource.query(`DELETE FROM ${table} WHERE id = ${database === 'postgres' ? '$1' : '?'}`, [id]);
}

/** The most attempts that were in flight at once from `from` (epoch ms) on, by their logged start and duration. */
function mostInFlight(attempts: { startedAt: number; durationMs: number }[], from: number): number {
  const spans = attempts.map(({ startedAt, durationMs }) => [startedAt, startedAt + durationMs]).filter(([, end]) => end > from);
  return Math.max(
    0,
    ...spans.map(([start]) => Math.max(start, from)).map((at) => spans.filter(([start, end]) => start <= at && at < end).length),
  );
}

/** How many checks after an abandoned delivery have run to their end, from now on. */
function finishedHealthChecks(app: TestApp): () => number {
  const health = app.get(ListenerHealthService);
  const check = health.afterAbandoned.bind(health);
  let finished = 0;
  health.afterAbandoned = (listenerId) => check(listenerId).finally(() => finished++);
  return () => finished;
}

/** The `webhook.listener.deactivated` events the app emits from now on. */
function deactivations(app: TestApp): WebhookListenerDeactivatedPayload[] {
  const heard: WebhookListenerDeactivatedPayload[] = [];
  app.app
    .get<EventEmitter2>(WEBHOOK_EVENT_EMITTER)
    .on(WEBHOOK_LISTENER_DEACTIVATED, (payload: WebhookListenerDeactivatedPayload) => heard.push(payload));
  return heard;
}

async function saveOrders(app: TestApp, space: number, count: number): Promise<void> {
  await app.dataSource.transaction(async (manager) => {
    for (let i = 0; i < count; i++) await manager.save(Order, { tenantId: space, state: OrderState.CONFIRMED });
  });
}

describe.each(selectedDatabases())('delivery guards on %s', (database) => {
  let receiver: TestReceiver;

  beforeAll(async () => {
    receiver = await new TestReceiver().start();
  });
  afterAll(() => receiver?.stop());

  describe('SSRF guard with the default security options', () => {
    let testApp: TestApp;
    beforeAll(async () => {
      testApp = await createTestApp(database, { webhook: WORKER });
    });
    afterAll(() => testApp?.close());

    it.each([
      '127.0.0.1',
      '[::1]',
      '[::ffff:127.0.0.1]',
      '10.0.0.8',
      '169.254.169.254',
      '[fd00::1]',
      '100.64.1.1',
      '0.0.0.0',
      '[64:ff9b::7f00:1]',
      '[::127.0.0.1]',
      '[::a9fe:a9fe]',
      'localhost',
      'api.LOCALHOST.',
    ])('refuses a listener URL on %s when it is saved', async (host) => {
      const error = await testApp
        .get(WebhookListenerService)
        .create(freshSpace(), { name: 'l', entity: 'Order', url: `http://${host}:${receiver.port}/x` })
        .catch((e) => e);
      expect(error).toBeInstanceOf(WebhookValidationError);
      expect(error.field).toBe('url');
    });

    it('refuses to send to a loopback name stored earlier (as while private networks were allowed), sends nothing and abandons', async () => {
      const space = freshSpace();
      // Written as an instance that allowed private networks would have saved it.
      const url = await testApp.dataSource.getRepository(WebhookUrl).save({
        linkedSpaceId: space,
        name: 'saved earlier',
        url: receiver.url(`/ssrf/${space}`, 'localhost'),
        state: CreationEntityState.ACTIVE,
        applicationManaged: false,
        plannedPurgeDate: null,
      });
      await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: url.id });
      await saveOrders(testApp, space, 1);
      const deliveries = testApp.get(WebhookDeliveryService);
      const [delivery] = await waitFor(async () => {
        const found = await deliveries.searchDeliveries(space, {});
        return found[0]?.state === 'ABANDONED' && found;
      }, 'the refused delivery');
      const attempts = await deliveries.searchAttempts(space, {});
      expect(attempts).toEqual([
        expect.objectContaining({
          deliveryId: delivery.id,
          outcome: 'REFUSED',
          statusCode: null,
          error: expect.stringContaining('localhost resolves to'),
        }),
      ]);
      expect(receiver.to(`/ssrf/${space}`)).toHaveLength(0);
    });
  });

  it.each<[string, WebhookModuleOptions['security']]>([
    ['allowedHosts', { allowedHosts: ['localhost'] }],
    ['allowPrivateNetworks', { allowPrivateNetworks: true }],
  ])('delivers to a private address when %s says so', async (_name, security) => {
    const testApp = await createTestApp(database, { webhook: { ...WORKER, security } });
    try {
      const space = freshSpace();
      await testApp
        .get(WebhookListenerService)
        .create(space, { name: 'l', entity: 'Order', url: receiver.url(`/allowed/${space}`, 'localhost') });
      await saveOrders(testApp, space, 1);
      await waitFor(() => receiver.to(`/allowed/${space}`).length === 1, 'the allowed delivery');
    } finally {
      await testApp.close();
    }
  });

  /**
   * An app whose worker keeps to `delivery`'s caps, and `count` changes for a receiver that answers
   * its first request (which opens its window to two), holds the next two and then answers at once;
   * returned once the receiver holds the two.
   */
  async function besideStuckReceiver(
    delivery: WebhookModuleOptions['delivery'],
    count: number,
  ): Promise<{ testApp: TestApp; stuck: number }> {
    const testApp = await createTestApp(database, { webhook: { ...WORKER, security: { allowPrivateNetworks: true }, delivery } });
    try {
      const stuck = freshSpace();
      receiver.script(`/stuck/${stuck}`, answer(204), receiver.hold, receiver.hold, answer(204));
      await testApp.get(WebhookListenerService).create(stuck, { name: 'stuck', entity: 'Order', url: receiver.url(`/stuck/${stuck}`) });
      await saveOrders(testApp, stuck, count);
      await waitFor(() => receiver.to(`/stuck/${stuck}`).length === 3, 'the stuck receiver to hold two requests');
      return { testApp, stuck };
    } catch (error) {
      receiver.releaseHeld();
      await testApp.close();
      throw error;
    }
  }

  it('keeps at most perUrlConcurrency requests at a receiver that does not answer while another receiver gets all of its deliveries, and sends it the rest once it answers', async () => {
    const { testApp, stuck } = await besideStuckReceiver(
      { concurrency: 8, perUrlConcurrency: 2, timeoutMs: 60_000, pollIntervalMs: 100 },
      20,
    );
    try {
      const healthy = freshSpace();
      await testApp
        .get(WebhookListenerService)
        .create(healthy, { name: 'healthy', entity: 'Order', url: receiver.url(`/healthy/${healthy}`) });
      await saveOrders(testApp, healthy, 30);
      await waitFor(() => receiver.to(`/healthy/${healthy}`).length === 30, 'all 30 deliveries to the healthy receiver');
      // The receiver has seen the last healthy requests before the worker has settled them: wait for the log.
      await waitFor(async () => (await succeededDeliveries(testApp, healthy)) === 30, 'the 30 healthy deliveries to be recorded');
      expect(receiver.to(`/stuck/${stuck}`)).toHaveLength(3);
      expect(testApp.app.get(WebhookDispatcher).inFlightCount).toBe(2);

      receiver.releaseHeld();
      await waitFor(
        async () => (await succeededDeliveries(testApp, stuck)) === 20,
        'the 17 deliveries kept back for the stuck receiver to follow the 3 it got',
      );
      expect(new Set(receiver.to(`/stuck/${stuck}`).map((request) => request.headers['webhook-id'])).size).toBe(20);
    } finally {
      receiver.releaseHeld();
      await testApp.close();
    }
  });

  it('keeps the other receivers going beside one that does not answer, with no poll to fall back on', async () => {
    // Only commits and the worker's own wakes claim here: a wake lost while the stuck URL has its
    // share in flight would leave the healthy deliveries waiting for a poll a minute away.
    const { testApp, stuck } = await besideStuckReceiver(
      { concurrency: 8, perUrlConcurrency: 2, batchSize: 10, timeoutMs: 60_000, pollIntervalMs: 60_000 },
      30,
    );
    try {
      const healthy = freshSpace();
      for (const name of ['a', 'b'])
        await testApp
          .get(WebhookListenerService)
          .create(healthy, { name, entity: 'Order', url: receiver.url(`/healthy/${healthy}/${name}`) });
      await saveOrders(testApp, healthy, 150);
      await waitFor(
        () => receiver.to(`/healthy/${healthy}/a`).length + receiver.to(`/healthy/${healthy}/b`).length === 300,
        'all 300 deliveries to the two healthy receivers',
      );
      expect(receiver.to(`/stuck/${stuck}`)).toHaveLength(3);
    } finally {
      receiver.releaseHeld();
      await testApp.close();
    }
  });

  it('sends one request at a time to a receiver until it answers, one more with every answer, and one at a time again after a timeout', async () => {
    const testApp = await createTestApp(database, {
      webhook: {
        ...WORKER,
        security: { allowPrivateNetworks: true },
        delivery: { concurrency: 4, perUrlConcurrency: 2, timeoutMs: 300, pollIntervalMs: 100, retrySchedule: [] },
      },
    });
    try {
      const listeners = testApp.get(WebhookListenerService);
      const deliveries = testApp.get(WebhookDeliveryService);
      const attemptsOf = (space: number, count: number) =>
        waitFor(async () => {
          const found = await deliveries.searchAttempts(space, { orderBys: [{ fieldName: 'id', sorting: 'ASC' }] });
          return found.length === count && found;
        }, `${count} attempts in space ${space}`);
      const dead = [freshSpace(), freshSpace()];
      for (const space of dead) {
        receiver.script(`/dead/${space}`, receiver.hold);
        await listeners.create(space, { name: 'dead', entity: 'Order', url: receiver.url(`/dead/${space}`) });
      }
      const healthy = freshSpace();
      await listeners.create(healthy, { name: 'healthy', entity: 'Order', url: receiver.url(`/healthy/${healthy}`) });
      for (const space of dead) await saveOrders(testApp, space, 6);
      await saveOrders(testApp, healthy, 20);

      await waitFor(async () => (await succeededDeliveries(testApp, healthy)) === 20, 'the 20 deliveries to the healthy receiver');
      for (const space of dead) {
        const attempts = await attemptsOf(space, 6);
        expect(attempts.map((attempt) => attempt.outcome)).toEqual(Array(6).fill('TIMEOUT'));
        // Never having answered, a dead receiver held one slot, not its share of two.
        expect(mostInFlight(attempts, 0)).toBe(1);
      }

      // An answer opens the window to two: the two requests after it are held together.
      const [revived] = dead;
      receiver.script(`/dead/${revived}`, ...Array<ReceiverBehaviour>(6).fill(receiver.hold), answer(200), receiver.hold);
      await saveOrders(testApp, revived, 3);
      const afterAnswer = await attemptsOf(revived, 9);
      const answered = afterAnswer.find((attempt) => attempt.outcome === 'SUCCEEDED')!;
      expect(mostInFlight(afterAnswer, answered.startedAt + answered.durationMs)).toBe(2);

      // Their timeouts close it to one again.
      await saveOrders(testApp, revived, 2);
      const afterTimeouts = await attemptsOf(revived, 11);
      const lastTimeout = Math.max(...afterAnswer.map((attempt) => attempt.startedAt + attempt.durationMs));
      expect(afterTimeouts.slice(9).map((attempt) => attempt.outcome)).toEqual(['TIMEOUT', 'TIMEOUT']);
      expect(mostInFlight(afterTimeouts, lastTimeout)).toBe(1);
    } finally {
      receiver.releaseHeld();
      await testApp.close();
    }
  });

  it('gives back what is in flight at shutdown, and the next instance delivers it', async () => {
    const { connection: shared, cleanUp } = sharedConnection(database);
    const options: WebhookModuleOptions = {
      ...WORKER,
      security: { allowPrivateNetworks: true },
      delivery: { timeoutMs: 300, pollIntervalMs: 100, concurrency: 4, retrySchedule: [50] },
    };
    const space = freshSpace();
    // Three answers open the URL's window to four, the global cap: the four requests after them are held.
    receiver.script(`/shutdown/${space}`, answer(200), answer(200), answer(200), receiver.hold);
    const first = await createTestApp(database, { webhook: options, connection: shared });
    await first.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(`/shutdown/${space}`) });
    await saveOrders(first, space, 10);
    await waitFor(() => receiver.to(`/shutdown/${space}`).length === 7, 'four requests in flight after three answered');
    await first.close();

    const leased = await countWhere(shared as DataSourceOptions, space);
    expect(leased.claimed).toBe(0);
    expect(leased.succeeded).toBe(3);

    receiver.script(`/shutdown/${space}`, answer(200));
    const second = await createTestApp(database, { webhook: options, connection: shared, keepSchema: true });
    try {
      await waitFor(async () => (await succeededDeliveries(second, space)) === 10, 'all 10 deliveries');
    } finally {
      await second.close();
      cleanUp();
    }
  });

  it.each([
    ['another key', randomBytes(32).toString('base64')],
    ['no key', undefined],
  ])('refuses to rotate, with %s, an identity whose keys it cannot open, and changes nothing', async (_label, otherKey) => {
    const { connection, cleanUp } = sharedConnection(database);
    const space = freshSpace();
    const sealing = await createTestApp(database, {
      webhook: { signing: { keyEncryptionKey: randomBytes(32).toString('base64') } },
      connection,
    });
    try {
      const identities = sealing.get(WebhookIdentityService);
      const identity = await identities.create(space, { name: 'sealed' });
      const secret = await identities.revealSecret(space, identity.id);
      const other = await createTestApp(database, {
        webhook: otherKey ? { signing: { keyEncryptionKey: otherKey } } : {},
        connection,
        keepSchema: true,
      });
      try {
        await expect(other.get(WebhookIdentityService).rotate(space, identity.id)).rejects.toThrow(WebhookConfigurationError);
      } finally {
        await other.close();
      }
      expect(await identities.read(space, identity.id)).toMatchObject({ keyId: identity.keyId, version: identity.version });
      expect(await identities.revealSecret(space, identity.id)).toBe(secret);
      expect(await identities.rotate(space, identity.id)).toMatchObject({ version: identity.version + 1 });
    } finally {
      await sealing.close();
      cleanUp();
    }
  });

  it.each([[['standard-webhooks']], [['x-signature', 'standard-webhooks']]] as const)(
    'sends nothing for a listener whose identity cannot be opened, logs why and keeps the delivery, while the other listeners get theirs (schemes %j)',
    async (schemes) => {
      const { connection, cleanUp } = sharedConnection(database);
      const space = freshSpace();
      const sealing = await createTestApp(database, {
        webhook: { security: { allowPrivateNetworks: true }, signing: { keyEncryptionKey: randomBytes(32).toString('base64') } },
        connection,
      });
      const identity = await sealing.get(WebhookIdentityService).create(space, { name: 'sealed' });
      const sealedListener = await sealing
        .get(WebhookListenerService)
        .create(space, { name: 'sealed', entity: 'Order', url: receiver.url(`/sealed/${space}`), identity: identity.id });
      await sealing.close();

      // This instance lacks the key that sealed the identity's private parts.
      const logs = new LogCollector();
      const worker = await createTestApp(database, {
        webhook: { ...WORKER, security: { allowPrivateNetworks: true }, signing: { schemes: [...schemes] } },
        connection,
        keepSchema: true,
        logger: logs,
      });
      try {
        await worker.get(WebhookListenerService).create(space, { name: 'open', entity: 'Order', url: receiver.url(`/open/${space}`) });
        // A whole claim of them: given back due at once, they were claimed again and again.
        const orders = 100;
        const savedAt = Date.now();
        await saveOrders(worker, space, orders);
        await waitFor(
          () => receiver.to(`/open/${space}`).length === orders,
          'the requests of the listener signed by the space default',
          45_000,
        );
        const sealedErrors = () => logs.errors.filter((error) => error.includes('signing.keyEncryptionKey'));
        await waitFor(() => sealedErrors().length >= orders, 'the errors of the sealed identity', 45_000);
        expect(receiver.to(`/sealed/${space}`)).toHaveLength(0);
        const sealedDeliveries = await worker.get(WebhookDeliveryService).searchDeliveries(space, {
          filter: { type: 'LEAF', fieldName: 'listenerId', operator: 'EQUALS', value: sealedListener.id },
        });
        expect(sealedDeliveries).toHaveLength(orders);
        for (const delivery of sealedDeliveries) {
          expect(delivery).toMatchObject({ state: 'PENDING', attempts: 0 });
          // Tried again 30 s after it was given back, not at once.
          expect(delivery.nextAttemptAt).toBeGreaterThanOrEqual(savedAt + 30_000);
        }
        expect(sealedErrors()).toHaveLength(orders);
        expect(sealedErrors()[0]).toContain('tried again in 30 s');
      } finally {
        await worker.close();
        cleanUp();
      }
    },
  );

  it('takes over a delivery whose lease ran out (an instance that died), and leaves one whose lease holds', async () => {
    const { connection, cleanUp } = sharedConnection(database);
    const space = freshSpace();
    const setup = await createTestApp(database, { webhook: { security: { allowPrivateNetworks: true } }, connection });
    await setup.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(`/takeover/${space}`) });
    await saveOrders(setup, space, 2);
    const [expired, held] = await setup
      .get(WebhookDeliveryService)
      .searchDeliveries(space, { orderBys: [{ fieldName: 'id', sorting: 'ASC' }] });
    const q = (name: string) => setup.dataSource.driver.escape(name);
    const p = (index: number) => (database === 'postgres' ? `$${index}` : '?');
    const lease = `UPDATE webhook_delivery SET ${q('leaseOwner')} = 'dead-instance', ${q('leaseUntil')} = ${p(1)} WHERE id = ${p(2)}`;
    await setup.dataSource.query(lease, [Date.now() - 1_000, expired.id]);
    await setup.dataSource.query(lease, [Date.now() + 3_600_000, held.id]);
    await setup.close();

    const worker = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true } },
      connection,
      keepSchema: true,
    });
    try {
      const deliveries = worker.get(WebhookDeliveryService);
      await waitFor(
        async () =>
          (await deliveries.searchDeliveries(space, { orderBys: [{ fieldName: 'id', sorting: 'ASC' }] }))[0].state === 'SUCCEEDED',
        'the expired lease to be taken over',
      );
      const [taken, stillHeld] = await deliveries.searchDeliveries(space, { orderBys: [{ fieldName: 'id', sorting: 'ASC' }] });
      expect(taken).toMatchObject({ id: expired.id, state: 'SUCCEEDED', leaseOwner: null });
      expect(stillHeld).toMatchObject({ id: held.id, state: 'PENDING', leaseOwner: 'dead-instance' });
      expect(receiver.to(`/takeover/${space}`)).toHaveLength(1);
    } finally {
      await worker.close();
      cleanUp();
    }
  });

  it('ignores the result and the give-back of a lease that ran out and was taken again, and keeps the later lease', async () => {
    const testApp = await createTestApp(database, { webhook: { security: { allowPrivateNetworks: true } } });
    try {
      const space = freshSpace();
      await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(`/relet/${space}`) });
      await saveOrders(testApp, space, 1);
      const [pending] = await testApp.get(WebhookDeliveryService).searchDeliveries(space, {});
      const store = testApp.get(DeliveryStore);
      const onlyThisUrl = (urlId: number) => (urlId === pending.urlId ? 1 : 0);
      const owner = 'this-instance';
      const { deliveries: first } = await store.claim(owner, 1_000, 1, [], onlyThisUrl);
      expect(first.map(({ id }) => id)).toEqual([pending.id]);
      await waitFor(() => Date.now() > first[0].leaseUntil, 'the first lease to run out', 1_000);
      const { deliveries: again } = await store.claim(owner, 1_000, 60_000, [], onlyThisUrl);
      expect(again.map(({ id }) => id)).toEqual([pending.id]);

      const succeeded = (delivery: ClaimedDelivery): FinishedAttempt => ({
        delivery,
        completion: { kind: 'succeeded' },
        result: {
          outcome: WebhookAttemptOutcome.SUCCEEDED,
          statusCode: 200,
          responseBody: 'ok',
          error: null,
          startedAt: Date.now(),
          durationMs: 1,
          retryAfterMs: null,
        },
      });
      expect(await store.complete(owner, [succeeded(first[0])])).toEqual(new Set());
      await store.release(owner, first);
      const deliveries = testApp.get(WebhookDeliveryService);
      const [stillLeased] = await deliveries.searchDeliveries(space, {});
      expect(stillLeased).toMatchObject({ state: 'PENDING', attempts: 0, leaseOwner: owner, leaseUntil: again[0].leaseUntil });
      expect(await deliveries.searchAttempts(space, {})).toEqual([]);

      expect(await store.complete(owner, [succeeded(again[0])])).toEqual(new Set([pending.id]));
      const [done] = await deliveries.searchDeliveries(space, {});
      expect(done).toMatchObject({ state: 'SUCCEEDED', attempts: 1, leaseOwner: null, leaseUntil: null });
      expect((await deliveries.searchAttempts(space, {})).map((attempt) => attempt.attemptNumber)).toEqual([1]);
    } finally {
      await testApp.close();
    }
  });

  it.each([200, 410])(
    'neither logs nor acts on an answer (%i) whose lease another instance took meanwhile, warns of it, and sends the deliveries waiting behind it',
    async (status) => {
      const logs = new LogCollector();
      const testApp = await createTestApp(database, { webhook: { ...WORKER, security: { allowPrivateNetworks: true } }, logger: logs });
      const announced: unknown[] = [];
      const listenerEvents: string[] = [];
      testApp.app.get<EventEmitter2>(WEBHOOK_EVENT_EMITTER).onAny((name: string | string[], payload: unknown) => {
        announced.push(payload);
        if (String(name).startsWith('webhook.listener.')) listenerEvents.push(String(name));
      });
      try {
        const space = freshSpace();
        const path = `/taken-over/${space}`;
        const held: ServerResponse[] = [];
        receiver.script(path, (_request, _index, response) => held.push(response), answer(200));
        await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
        // The URL gets one request until it has answered: three wait behind the held one.
        await saveOrders(testApp, space, 4);
        const [first] = await waitFor(() => receiver.to(path).length === 1 && receiver.to(path), 'the first request to be held');
        const inFlightId = Number(String(first.headers['webhook-id']).slice('msg_'.length));
        const deliveries = testApp.get(WebhookDeliveryService);
        const inFlight = async () => (await deliveries.searchDeliveries(space, {})).find((delivery) => delivery.id === inFlightId)!;
        // What a claim of another instance writes once this one's lease has run out (an outage, say).
        const otherLease = { leaseOwner: 'another-instance', leaseUntil: Date.now() + 60_000 };
        await testApp.dataSource.getRepository(WebhookDelivery).update(inFlightId, otherLease);

        held.forEach((response) => response.writeHead(status).end());
        await waitFor(() => logs.warnings.find((warning) => warning.includes(`(${inFlightId})`)), 'the warning of the lost lease');
        await waitFor(async () => (await succeededDeliveries(testApp, space)) === 3, 'the three others to be delivered');
        expect((await deliveries.searchAttempts(space, {})).filter((attempt) => attempt.deliveryId === inFlightId)).toEqual([]);
        expect(await inFlight()).toMatchObject({ state: 'PENDING', attempts: 0, ...otherLease });
        expect(announced.filter((payload) => (payload as { deliveryId?: number }).deliveryId === inFlightId)).toEqual([]);
        // A 410 Gone deactivates its listener only under a lease still held.
        expect(await testApp.get(WebhookListenerService).read(space, (await inFlight()).listenerId)).toMatchObject({ state: 'ACTIVE' });
        expect(listenerEvents).toEqual([]);
      } finally {
        await testApp.close();
      }
    },
  );

  it("acts on its own listeners' and URLs' changes only, not on events of the same names on the application's emitter", async () => {
    const { EventEmitterModule, EventEmitter2: HostEmitter } = await import('@nestjs/event-emitter');
    const testApp = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true } },
      extraImports: [EventEmitterModule.forRoot()],
    });
    try {
      const space = freshSpace();
      const path = `/shared-emitter/${space}`;
      receiver.script(path, receiver.hold, answer(200));
      const listener = await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
      await saveOrders(testApp, space, 3);
      await waitFor(() => receiver.to(path).length === 1, 'the first request to be held');
      // As a copy of the module on another DataSource announces its own listener and URL of the same ids.
      const hostEmitter = testApp.app.get(HostEmitter);
      hostEmitter.emit(WEBHOOK_LISTENER_STATE_CHANGED, { listenerId: listener.id, spaceId: space, from: 'ACTIVE', to: 'INACTIVE' });
      hostEmitter.emit(WEBHOOK_URL_STATE_CHANGED, { urlId: listener.url.id, spaceId: space, from: 'ACTIVE', to: 'INACTIVE' });

      receiver.releaseHeld();
      await waitFor(async () => (await succeededDeliveries(testApp, space)) === 3, 'all three deliveries to succeed');
      expect(receiver.to(path)).toHaveLength(3);
    } finally {
      await testApp.close();
    }
  });

  it('takes an answer that comes within timeoutMs, also one that comes in its last half second', async () => {
    // undici's own timers tick every 499 ms: set to timeoutMs, they could end a request up to a tick
    // early. Sixteen requests, up to four at once, go out at many phases of that tick.
    const timeoutMs = 1_490;
    const testApp = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true }, delivery: { pollIntervalMs: 100, timeoutMs, perUrlConcurrency: 4 } },
    });
    try {
      const space = freshSpace();
      const path = `/late-answer/${space}`;
      receiver.script(path, answerAfter(1_200));
      await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
      await saveOrders(testApp, space, 16);
      const deliveries = testApp.get(WebhookDeliveryService);
      const finished = await waitFor(async () => {
        const found = await deliveries.searchDeliveries(space, {});
        return found.every((delivery) => delivery.attempts > 0) && found;
      }, 'every delivery to have had an attempt');
      expect(finished.filter((delivery) => delivery.state !== 'SUCCEEDED' || delivery.attempts !== 1)).toEqual([]);
    } finally {
      await testApp.close();
    }
  });

  it('cancels, unsent, a delivery whose event was removed by hand instead of leasing it again and again', async () => {
    const testApp = await createTestApp(database, { webhook: RETRYING_AFTER_A_SECOND });
    try {
      const space = freshSpace();
      const path = `/event-removed/${space}`;
      receiver.script(path, answer(500), answer(500), answer(200));
      await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
      await saveOrders(testApp, space, 2);
      const deliveries = testApp.get(WebhookDeliveryService);
      const byId = () => deliveries.searchDeliveries(space, { orderBys: [{ fieldName: 'id', sorting: 'ASC' }] });
      const [kept, orphaned] = await waitFor(async () => {
        const found = await byId();
        return found.length === 2 && found.every((delivery) => delivery.attempts === 1) && found;
      }, 'both first attempts to fail');
      // Before the retry is due, a host removes the second delivery's event by hand.
      await removeByHand(testApp, database, 'webhook_event', orphaned.eventId);
      await waitFor(async () => (await byId()).map((delivery) => delivery.state).join() === 'SUCCEEDED,CANCELLED', 'the retries');
      expect(receiver.to(path)).toHaveLength(3);
      const attempts = await deliveries.searchAttempts(space, { orderBys: [{ fieldName: 'id', sorting: 'ASC' }] });
      expect(attempts.filter((attempt) => attempt.deliveryId === kept.id).map((attempt) => attempt.outcome)).toEqual([
        'HTTP_ERROR',
        'SUCCEEDED',
      ]);
      expect(attempts.filter((attempt) => attempt.deliveryId === orphaned.id).map((attempt) => attempt.outcome)).toEqual(['HTTP_ERROR']);
    } finally {
      await testApp.close();
    }
  });

  it('cancels, unsent, a delivery whose listener row was removed by hand, and keeps the delivery and its attempt in the log', async () => {
    const testApp = await createTestApp(database, { webhook: RETRYING_AFTER_A_SECOND });
    try {
      const space = freshSpace();
      const keptPath = `/listener-kept/${space}`;
      const removedPath = `/listener-removed/${space}`;
      receiver.script(keptPath, answer(500), answer(200));
      receiver.script(removedPath, answer(500), answer(200));
      const listeners = testApp.get(WebhookListenerService);
      const kept = await listeners.create(space, { name: 'kept', entity: 'Order', url: receiver.url(keptPath) });
      const removed = await listeners.create(space, { name: 'removed', entity: 'Order', url: receiver.url(removedPath) });
      await saveOrders(testApp, space, 1);
      const deliveries = testApp.get(WebhookDeliveryService);
      const states = async () =>
        Object.fromEntries((await deliveries.searchDeliveries(space, {})).map((delivery) => [delivery.listenerId, delivery.state]));
      await waitFor(async () => {
        const found = await deliveries.searchDeliveries(space, {});
        return found.length === 2 && found.every((delivery) => delivery.attempts === 1);
      }, 'both first attempts to fail');
      // Before the retry is due, a host removes the second listener's row by hand.
      await removeByHand(testApp, database, 'webhook_listener', removed.id);
      await waitFor(async () => {
        const now = await states();
        return now[kept.id] === 'SUCCEEDED' && now[removed.id] === 'CANCELLED';
      }, 'the retry of the kept listener and the cancellation of the other');
      expect(receiver.to(keptPath)).toHaveLength(2);
      expect(receiver.to(removedPath)).toHaveLength(1);
      const attempts = await deliveries.searchAttempts(space, {});
      expect(attempts.filter((attempt) => attempt.listenerId === removed.id).map((attempt) => attempt.outcome)).toEqual(['HTTP_ERROR']);
    } finally {
      await testApp.close();
    }
  });

  /**
   * A worker with one request per URL, and five deliveries to `path` of a new listener: the first
   * held by the receiver, the other four claimed with it and waiting behind it for the URL's one slot.
   */
  async function fourWaitingBehindAHeldOne(path: string, space: number) {
    const testApp = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true }, delivery: { ...WORKER.delivery, perUrlConcurrency: 1 } },
    });
    receiver.script(path, receiver.hold, answer(200));
    const listener = await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
    await saveOrders(testApp, space, 5);
    await waitFor(() => receiver.to(path).length === 1, 'the first request to be held');
    return { testApp, listener };
  }

  it('cancels what it holds of a URL that is set INACTIVE, and sends none of it', async () => {
    const space = freshSpace();
    const path = `/url-paused/${space}`;
    const { testApp, listener } = await fourWaitingBehindAHeldOne(path, space);
    try {
      await testApp.get(WebhookUrlService).update(space, { id: listener.url.id, version: listener.url.version, state: 'INACTIVE' });
      receiver.releaseHeld();
      const deliveries = testApp.get(WebhookDeliveryService);
      const states = async () =>
        (await deliveries.searchDeliveries(space, { orderBys: [{ fieldName: 'id', sorting: 'ASC' }] })).map((delivery) => delivery.state);
      await waitFor(
        async () => (await states()).join() === 'SUCCEEDED,CANCELLED,CANCELLED,CANCELLED,CANCELLED',
        'the four others to be cancelled',
      );
      expect(receiver.to(path)).toHaveLength(1);
    } finally {
      await testApp.close();
    }
  });

  it('cancels what it holds of a listener whose receiver answered 410 Gone, and sends none of it', async () => {
    const testApp = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true }, delivery: { ...WORKER.delivery, perUrlConcurrency: 4 } },
    });
    try {
      const space = freshSpace();
      const path = `/gone/${space}`;
      receiver.script(path, answer(410));
      const listener = await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
      // All twenty are claimed together; the URL's window lets one request out until it has answered.
      await saveOrders(testApp, space, 20);
      const deliveries = testApp.get(WebhookDeliveryService);
      const states = async () => (await deliveries.searchDeliveries(space, {})).map((delivery) => delivery.state).sort();
      await waitFor(async () => !(await states()).includes(WebhookDeliveryState.PENDING), 'every delivery to end');
      expect(await states()).toEqual(['ABANDONED', ...Array(19).fill('CANCELLED')]);
      expect(receiver.to(path)).toHaveLength(1);
      expect((await testApp.get(WebhookListenerService).read(space, listener.id)).state).toBe('INACTIVE');
    } finally {
      await testApp.close();
    }
  });

  it('cancels what it holds of a listener whose receiver answered 410 Gone after another instance had deactivated it', async () => {
    const space = freshSpace();
    const path = `/gone-elsewhere/${space}`;
    const { testApp, listener } = await fourWaitingBehindAHeldOne(path, space);
    try {
      // As another instance does on a 410 of its own: the row only, which this instance hears nothing of.
      await testApp.dataSource.getRepository(WebhookListener).update(listener.id, { state: CreationEntityState.INACTIVE });
      receiver.script(path, answer(410));
      receiver.releaseHeld(410);
      const deliveries = testApp.get(WebhookDeliveryService);
      const states = async () => (await deliveries.searchDeliveries(space, {})).map((delivery) => delivery.state).sort();
      await waitFor(async () => !(await states()).includes(WebhookDeliveryState.PENDING), 'every delivery to end');
      expect(await states()).toEqual(['ABANDONED', ...Array(4).fill('CANCELLED')]);
      expect(receiver.to(path)).toHaveLength(1);
    } finally {
      await testApp.close();
    }
  });

  it("sends what it holds of a URL to the URL's new address once this instance changed it", async () => {
    const space = freshSpace();
    const [before, after] = [`/moving/${space}`, `/moved/${space}`];
    const { testApp, listener } = await fourWaitingBehindAHeldOne(before, space);
    try {
      const urls = testApp.get(WebhookUrlService);
      await urls.update(space, { id: listener.url.id, version: listener.url.version, url: receiver.url(after) });
      receiver.releaseHeld();
      await waitFor(() => receiver.to(after).length === 4, 'the four others at the new address');
      expect(receiver.to(before)).toHaveLength(1);
    } finally {
      await testApp.close();
    }
  });

  it('sends nothing through a URL that is not ACTIVE: its pending deliveries are cancelled and new changes make none', async () => {
    const testApp = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true }, delivery: { pollIntervalMs: 100, retrySchedule: [60_000] } },
    });
    try {
      const space = freshSpace();
      const path = `/url-inactive/${space}`;
      receiver.script(path, answer(500), answer(200));
      const listener = await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
      await saveOrders(testApp, space, 1);
      const deliveries = testApp.get(WebhookDeliveryService);
      await waitFor(async () => (await deliveries.searchDeliveries(space, {}))[0]?.attempts === 1, 'the first attempt to fail');
      // The URL is set INACTIVE, and its pending delivery made due at once (redeliver() refuses it now).
      const urls = testApp.get(WebhookUrlService);
      await urls.update(space, { id: listener.url.id, version: listener.url.version, state: 'INACTIVE' });
      const [pending] = await deliveries.searchDeliveries(space, {});
      await expect(deliveries.redeliver(space, pending.id)).rejects.toThrow(WebhookStateError);
      await testApp.dataSource.getRepository(WebhookDelivery).update(pending.id, { nextAttemptAt: Date.now() });
      await saveOrders(testApp, space, 1);
      await waitFor(async () => (await deliveries.searchDeliveries(space, {}))[0].state === 'CANCELLED', 'the delivery to be cancelled');
      expect(await deliveries.countDeliveries(space)).toBe(1);
      expect(receiver.to(path)).toHaveLength(1);

      const active = await urls.update(space, { id: listener.url.id, version: listener.url.version + 1, state: 'ACTIVE' });
      expect(active.state).toBe('ACTIVE');
      await saveOrders(testApp, space, 1);
      await waitFor(() => receiver.to(path).length === 2, 'a delivery once the URL is ACTIVE again');
    } finally {
      await testApp.close();
    }
  });

  it('deactivates a listener whose deliveries keep being abandoned', async () => {
    const testApp = await createTestApp(database, {
      webhook: {
        ...WORKER,
        security: { allowPrivateNetworks: true },
        delivery: { retrySchedule: [], pollIntervalMs: 100, deactivateAfter: { abandonedDeliveries: 3, noSuccessForMs: 0 } },
      },
    });
    try {
      const heard = deactivations(testApp);
      const space = freshSpace();
      receiver.script(`/failing/${space}`, answer(500));
      const listener = await testApp
        .get(WebhookListenerService)
        .create(space, { name: 'l', entity: 'Order', url: receiver.url(`/failing/${space}`) });
      await saveOrders(testApp, space, 3);
      // The event follows the commit that deactivates: another connection can read the new state before it is emitted.
      await waitFor(() => heard.length > 0, 'the listener to be announced as deactivated');
      expect(heard).toEqual([expect.objectContaining({ listenerId: listener.id, spaceId: space })]);
      expect((await testApp.get(WebhookListenerService).read(space, listener.id)).state).toBe('INACTIVE');
    } finally {
      await testApp.close();
    }
  });

  it('keeps a new listener whose deliveries are all abandoned ACTIVE while the default window has not passed', async () => {
    const testApp = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true }, delivery: { pollIntervalMs: 100, noRetryStatuses: [404] } },
    });
    try {
      const heard = deactivations(testApp);
      const checks = finishedHealthChecks(testApp);
      const space = freshSpace();
      receiver.script(`/not-found/${space}`, answer(404));
      const listener = await testApp
        .get(WebhookListenerService)
        .create(space, { name: 'l', entity: 'Order', url: receiver.url(`/not-found/${space}`) });
      // More than the default 10 abandoned deliveries, within a second of the listener's creation.
      await saveOrders(testApp, space, 12);
      await waitFor(() => checks() === 12, 'the checks after the 12 abandoned deliveries');
      expect(
        await testApp
          .get(WebhookDeliveryService)
          .countDeliveries(space, { type: 'LEAF', fieldName: 'state', operator: 'EQUALS', value: 'ABANDONED' }),
      ).toBe(12);
      expect(heard).toEqual([]);
      expect((await testApp.get(WebhookListenerService).read(space, listener.id)).state).toBe('ACTIVE');
    } finally {
      await testApp.close();
    }
  });

  /** A minute: the window of the deactivation tests, which move rows back in time instead of waiting. */
  const WINDOW_MS = 60_000;

  /** A worker whose failed deliveries are abandoned at once, with `deactivateAfter` of two deliveries in WINDOW_MS. */
  function abandoningWorker(options: WebhookModuleOptions = {}): Promise<TestApp> {
    return createTestApp(database, {
      webhook: {
        ...WORKER,
        security: { allowPrivateNetworks: true },
        delivery: { retrySchedule: [], pollIntervalMs: 100, deactivateAfter: { abandonedDeliveries: 2, noSuccessForMs: WINDOW_MS } },
        ...options,
      },
    });
  }

  /** As if the listener had last changed, and its finished deliveries had finished, `ms` ago. */
  async function movedBack(testApp: TestApp, listenerId: number, ms: number): Promise<void> {
    const then = Date.now() - ms;
    // updatedOn by the database's clock, as the database writes it, whatever the application's time zone.
    const q = (name: string) => testApp.dataSource.driver.escape(name);
    const earlier = {
      sqlite: `strftime('%Y-%m-%d %H:%M:%f', 'now', '-${ms / 1000} seconds')`,
      postgres: `LOCALTIMESTAMP - interval '${ms} milliseconds'`,
      mariadb: `CURRENT_TIMESTAMP(6) - INTERVAL ${ms * 1000} MICROSECOND`,
    }[database];
    await testApp.dataSource.query(`UPDATE webhook_listener SET ${q('updatedOn')} = ${earlier} WHERE id = ${listenerId}`);
    await testApp.dataSource
      .createQueryBuilder()
      .update(WebhookDelivery)
      .set({ completedAt: then, nextAttemptAt: then })
      .where({ listenerId, state: In(['SUCCEEDED', 'ABANDONED']) })
      .execute();
  }

  it('deactivates a listener once, over noSuccessForMs, it stayed unchanged, nothing succeeded and enough were abandoned', async () => {
    const testApp = await abandoningWorker();
    try {
      const heard = deactivations(testApp);
      const checks = finishedHealthChecks(testApp);
      const space = freshSpace();
      receiver.script(`/failing-for-a-while/${space}`, answer(500));
      const listeners = testApp.get(WebhookListenerService);
      const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: receiver.url(`/failing-for-a-while/${space}`) });

      await saveOrders(testApp, space, 2);
      await waitFor(() => checks() === 2, 'the checks after the first two abandoned deliveries');
      expect((await listeners.read(space, listener.id)).state).toBe('ACTIVE');

      // The window passes: the two abandoned deliveries fall out of it, and two more are abandoned in it.
      await movedBack(testApp, listener.id, WINDOW_MS + 1_000);
      await saveOrders(testApp, space, 1);
      await waitFor(() => checks() === 3, 'the check after one delivery abandoned in the window');
      expect((await listeners.read(space, listener.id)).state).toBe('ACTIVE');
      await saveOrders(testApp, space, 1);
      await waitFor(() => heard.length > 0, 'the listener to be deactivated');
      expect(heard).toEqual([
        expect.objectContaining({ reason: expect.stringMatching(/^2 or more deliveries were abandoned and none succeeded since /) }),
      ]);
      expect((await listeners.read(space, listener.id)).state).toBe('INACTIVE');
    } finally {
      await testApp.close();
    }
  });

  it('deactivates a failing listener also when the delivery log is kept for less than noSuccessForMs', async () => {
    const testApp = await abandoningWorker({ retention: { deliveryLogTtlMs: WINDOW_MS / 2 }, scheduler: { retentionIntervalMs: 20 } });
    try {
      const heard = deactivations(testApp);
      const space = freshSpace();
      receiver.script(`/short-log/${space}`, answer(500));
      const listener = await testApp
        .get(WebhookListenerService)
        .create(space, { name: 'l', entity: 'Order', url: receiver.url(`/short-log/${space}`) });
      await movedBack(testApp, listener.id, WINDOW_MS + 1_000);
      await saveOrders(testApp, space, 2);
      await waitFor(() => heard.length > 0, 'the listener to be deactivated');
      expect((await testApp.get(WebhookListenerService).read(space, listener.id)).state).toBe('INACTIVE');
    } finally {
      await testApp.close();
    }
  });

  it('does not deactivate a reactivated listener again on its first abandoned delivery', async () => {
    const testApp = await abandoningWorker();
    try {
      const heard = deactivations(testApp);
      const checks = finishedHealthChecks(testApp);
      const space = freshSpace();
      receiver.script(`/failing-again/${space}`, answer(500));
      const listeners = testApp.get(WebhookListenerService);
      const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: receiver.url(`/failing-again/${space}`) });
      await movedBack(testApp, listener.id, WINDOW_MS + 1_000);
      await saveOrders(testApp, space, 2);
      await waitFor(() => heard.length > 0 && checks() === 2, 'the listener to be deactivated');

      const inactive = await listeners.read(space, listener.id);
      await listeners.update(space, { id: listener.id, version: inactive.version, state: 'ACTIVE' });
      await saveOrders(testApp, space, 1);
      await waitFor(() => checks() === 3, 'the check after the first delivery abandoned since the reactivation');
      expect(heard).toHaveLength(1);
      expect((await listeners.read(space, listener.id)).state).toBe('ACTIVE');
    } finally {
      await testApp.close();
    }
  });

  it('sends the deliveries of a listener that another instance made active again after this one deactivated it', async () => {
    const { connection, cleanUp } = sharedConnection(database);
    const space = freshSpace();
    receiver.script(`/reactivated/${space}`, answer(410), answer(200));
    const worker = await createTestApp(database, { webhook: { ...WORKER, security: { allowPrivateNetworks: true } }, connection });
    const apiOnly = await createTestApp(database, {
      webhook: { worker: { enabled: false }, security: { allowPrivateNetworks: true } },
      connection,
      keepSchema: true,
    });
    try {
      const deactivated = deactivations(worker);
      const listeners = apiOnly.get(WebhookListenerService);
      const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: receiver.url(`/reactivated/${space}`) });
      await saveOrders(apiOnly, space, 1);
      await waitFor(() => deactivated.length > 0, 'the 410 answer to deactivate the listener');

      const inactive = await listeners.read(space, listener.id);
      await listeners.update(space, { id: listener.id, version: inactive.version, state: 'ACTIVE' });
      await saveOrders(apiOnly, space, 1);

      await waitFor(async () => (await succeededDeliveries(worker, space)) === 1, 'the delivery after the reactivation');
      expect(receiver.to(`/reactivated/${space}`)).toHaveLength(2);
    } finally {
      await apiOnly.close();
      await worker.close();
      cleanUp();
    }
  });

  /**
   * Saves an order for the listener `fine` at a time, each delivered and written, until `done`: the
   * refused result waiting behind them takes a strike each time others were written since its last failure.
   */
  async function writeOtherResultsUntil(testApp: TestApp, space: number, done: () => Promise<boolean>): Promise<void> {
    receiver.script(`/fine/${space}`, answer(200));
    await testApp.get(WebhookListenerService).create(space, { name: 'fine', entity: 'Order', url: receiver.url(`/fine/${space}`) });
    for (let written = 1; !(await done()); written++) {
      if (written > 20) throw new Error('the refused result was still not written after 20 others');
      await saveOrders(testApp, space, 1);
      await waitFor(async () => (await succeededDeliveries(testApp, space)) >= written, 'the result written after the refused one');
    }
  }

  /** The delivery of the listener `listenerId` (one per listener in these tests). */
  async function deliveryTo(testApp: TestApp, space: number, listenerId: number) {
    const filter = { type: 'LEAF' as const, fieldName: 'listenerId', operator: 'EQUALS' as const, value: listenerId };
    const [delivery] = await testApp.get(WebhookDeliveryService).searchDeliveries(space, { filter });
    return delivery;
  }

  /**
   * A listener named `name` whose receiver behaves as `behaviour`: one order is sent to it, then it
   * is made INACTIVE, so that the orders saved afterwards are sent to the others only.
   */
  async function sendOneThenDeactivate(testApp: TestApp, space: number, name: string, behaviour: ReceiverBehaviour) {
    const path = `/${name}/${space}`;
    receiver.script(path, behaviour);
    const listeners = testApp.get(WebhookListenerService);
    const listener = await listeners.create(space, { name, entity: 'Order', url: receiver.url(path) });
    await saveOrders(testApp, space, 1);
    await waitFor(() => receiver.to(path).length === 1, `the request to ${name}`);
    await listeners.update(space, { id: listener.id, version: listener.version, state: 'INACTIVE' });
    return listener;
  }

  it('stops claiming while the database takes no results, and sends the rest once it does, each once', async () => {
    const testApp = await createTestApp(database, {
      webhook: {
        ...WORKER,
        security: { allowPrivateNetworks: true },
        delivery: { pollIntervalMs: 100, concurrency: 8, perUrlConcurrency: 8, batchSize: 50 },
      },
    });
    try {
      const space = freshSpace();
      const path = `/results-refused/${space}`;
      await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
      // As while connections to the database are cut again and again: every write of results fails.
      const store = testApp.get(DeliveryStore);
      const complete = store.complete.bind(store);
      let refusing = true;
      store.complete = (owner, finished) => (refusing ? Promise.reject(new Error('Connection terminated')) : complete(owner, finished));
      await saveOrders(testApp, space, 1_200);
      const dispatcher = testApp.app.get(WebhookDispatcher) as unknown as { finished: unknown[]; ready: unknown[]; inFlightCount: number };
      await waitFor(
        () => dispatcher.inFlightCount === 0 && dispatcher.ready.length === 0 && dispatcher.finished.length > 500,
        'the worker to stop claiming with its results unwritten',
      );
      expect(receiver.to(path).length).toBeLessThan(1_200);

      refusing = false;
      await waitFor(async () => (await succeededDeliveries(testApp, space)) === 1_200, 'every delivery once results are written', 30_000);
      const ids = receiver.to(path).map((request) => request.headers['webhook-id']);
      expect(new Set(ids).size).toBe(1_200);
      expect(ids).toHaveLength(1_200);
    } finally {
      await testApp.close();
    }
  });

  it('counts an attempt whose log row the database refuses, writes the other results, and logs why', async () => {
    const logs = new LogCollector();
    const testApp = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true }, delivery: { pollIntervalMs: 100, retrySchedule: [60_000] } },
      logger: logs,
    });
    try {
      await refuseAttemptsWithStatus(testApp, database, 418);
      const space = freshSpace();
      const teapot = await sendOneThenDeactivate(testApp, space, 'teapot', answer(418, 'short and stout'));

      await writeOtherResultsUntil(testApp, space, async () => (await deliveryTo(testApp, space, teapot.id)).attempts === 1);

      const refused = await deliveryTo(testApp, space, teapot.id);
      expect(refused).toMatchObject({ state: 'PENDING', attempts: 1, leaseOwner: null });
      expect(refused.nextAttemptAt).toBeGreaterThan(Date.now() + 30_000);
      const attempts = await testApp.get(WebhookDeliveryService).searchAttempts(space, {});
      expect(attempts.length).toBeGreaterThan(0);
      expect(attempts.every((attempt) => attempt.statusCode === 200)).toBe(true);
      expect(logs.errors.some((line) => line.includes("without the answer and error text in its attempt's log"))).toBe(true);
      expect(logs.errors.some((line) => /refused the result of delivery \d+; writing it without a row in the attempt log/.test(line))).toBe(
        true,
      );
    } finally {
      await testApp.close();
    }
  });

  it('logs an attempt whose answer the database refuses without that answer, and marks its delivery succeeded', async () => {
    const logs = new LogCollector();
    const testApp = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true }, delivery: { pollIntervalMs: 100 } },
      logger: logs,
    });
    try {
      await refuseAnswersContaining(testApp, database, 'not for this column');
      const space = freshSpace();
      const refusedAnswer = await sendOneThenDeactivate(testApp, space, 'refused-answer', answer(200, 'received, but not for this column'));

      await writeOtherResultsUntil(testApp, space, async () => (await deliveryTo(testApp, space, refusedAnswer.id)).state === 'SUCCEEDED');

      const delivery = await deliveryTo(testApp, space, refusedAnswer.id);
      expect(delivery).toMatchObject({ attempts: 1, leaseOwner: null });
      const filter = { type: 'LEAF' as const, fieldName: 'deliveryId', operator: 'EQUALS' as const, value: delivery.id };
      const [attempt] = await testApp.get(WebhookDeliveryService).searchAttempts(space, { filter });
      expect(attempt).toMatchObject({ statusCode: 200, responseBody: null, error: REFUSED_TEXT_NOTE });
    } finally {
      await testApp.close();
    }
  });

  it('drops a result the database refuses even without its attempt row, leaving its delivery leased and uncounted', async () => {
    const logs = new LogCollector();
    const testApp = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true }, delivery: { pollIntervalMs: 100 } },
      logger: logs,
    });
    try {
      const space = freshSpace();
      const path = `/never-counted/${space}`;
      const listener = await testApp
        .get(WebhookListenerService)
        .create(space, { name: 'parcels', entity: 'Parcel', url: receiver.url(path) });
      await refuseCountedAttempts(testApp, database, listener.id);
      await testApp.dataSource.getRepository(Parcel).save({ code: `never-counted-${space}`, shop: space, state: ParcelState.PACKED });
      await waitFor(() => receiver.to(path).length === 1, 'the request whose result is refused');

      const dropped = () => logs.errors.some((line) => /refused the result of delivery \d+; the delivery is taken up again/.test(line));
      await writeOtherResultsUntil(testApp, space, async () => dropped());

      // Taken up again, and sent again, once the lease ends.
      const delivery = await deliveryTo(testApp, space, listener.id);
      expect(delivery).toMatchObject({ attempts: 0, state: 'PENDING' });
      expect(delivery.leaseUntil).toBeGreaterThan(Date.now());
      expect(logs.errors.some((line) => line.includes('writing it without a row in the attempt log'))).toBe(true);
    } finally {
      await testApp.close();
    }
  });

  it('announces every delivery and keeps delivering when a listener of webhook.delivery.succeeded throws', async () => {
    const logs = new LogCollector();
    const testApp = await createTestApp(database, { webhook: { ...WORKER, security: { allowPrivateNetworks: true } }, logger: logs });
    try {
      const announced: number[] = [];
      testApp.app.get<EventEmitter2>(WEBHOOK_EVENT_EMITTER).on(WEBHOOK_DELIVERY_SUCCEEDED, ({ deliveryId }: { deliveryId: number }) => {
        announced.push(deliveryId);
        throw new Error('a bug in the host');
      });
      const space = freshSpace();
      receiver.script(`/throwing-listener/${space}`, answer(200));
      await testApp
        .get(WebhookListenerService)
        .create(space, { name: 'l', entity: 'Order', url: receiver.url(`/throwing-listener/${space}`) });
      await saveOrders(testApp, space, 3);
      await waitFor(async () => (await succeededDeliveries(testApp, space)) === 3, 'the first three deliveries');
      await saveOrders(testApp, space, 2);
      await waitFor(async () => (await succeededDeliveries(testApp, space)) === 5, 'two more deliveries');

      await waitFor(() => announced.length === 5, 'every delivery announced');
      expect(new Set(announced).size).toBe(5);
      expect(logs.errors.some((line) => line.includes('A listener of webhook.delivery.succeeded threw'))).toBe(true);
    } finally {
      await testApp.close();
    }
  });

  it('logs an answer longer than MySQL text holds, cut between characters to what the column holds', async () => {
    const testApp = await createTestApp(database, {
      webhook: { ...WORKER, security: { allowPrivateNetworks: true }, delivery: { pollIntervalMs: 100, maxResponseBytes: 100_000 } },
    });
    try {
      const space = freshSpace();
      // Two bytes each in UTF-8: 100 000 bytes in all.
      const page = 'é'.repeat(50_000);
      receiver.script(`/long-answer/${space}`, answer(200, page));
      await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(`/long-answer/${space}`) });
      await saveOrders(testApp, space, 1);
      await waitFor(async () => (await succeededDeliveries(testApp, space)) === 1, 'the delivery');

      const [attempt] = await testApp.get(WebhookDeliveryService).searchAttempts(space, {});
      expect(attempt.responseBody).toBe(database === 'mariadb' ? 'é'.repeat(32_767) : page);
    } finally {
      await testApp.close();
    }
  });
});

/** A constraint of the host's that refuses attempt rows whose answer contains `text`. */
async function refuseAnswersContaining(app: TestApp, database: TestDatabase, text: string): Promise<void> {
  const responseBody = app.dataSource.driver.escape('responseBody');
  if (database === 'sqlite') {
    await app.dataSource.query(
      `CREATE TRIGGER refuse_answer BEFORE INSERT ON webhook_delivery_attempt WHEN instr(NEW.${responseBody}, '${text}') > 0 BEGIN SELECT RAISE(ABORT, 'answer refused'); END`,
    );
    return;
  }
  await app.dataSource.query(
    `ALTER TABLE webhook_delivery_attempt ADD CONSTRAINT refuse_answer CHECK (${responseBody} IS NULL OR ${responseBody} NOT LIKE '%${text}%')`,
  );
}

/** Makes the database refuse attempt rows with this status code, as a constraint of the host's would. */
async function refuseAttemptsWithStatus(app: TestApp, database: TestDatabase, status: number): Promise<void> {
  if (database === 'sqlite') {
    await app.dataSource.query(
      `CREATE TRIGGER refuse_status BEFORE INSERT ON webhook_delivery_attempt WHEN NEW.statusCode = ${status} BEGIN SELECT RAISE(ABORT, 'status refused'); END`,
    );
    return;
  }
  const statusCode = app.dataSource.driver.escape('statusCode');
  await app.dataSource.query(
    `ALTER TABLE webhook_delivery_attempt ADD CONSTRAINT refuse_status CHECK (${statusCode} IS NULL OR ${statusCode} <> ${status})`,
  );
}

/** A constraint of the host's that refuses to count an attempt of the deliveries of one listener. */
async function refuseCountedAttempts(app: TestApp, database: TestDatabase, listenerId: number): Promise<void> {
  const q = (name: string) => app.dataSource.driver.escape(name);
  if (database === 'sqlite') {
    await app.dataSource.query(
      `CREATE TRIGGER refuse_counted BEFORE UPDATE ON webhook_delivery WHEN NEW.${q('listenerId')} = ${listenerId} AND NEW.attempts > 0 BEGIN SELECT RAISE(ABORT, 'attempt refused'); END`,
    );
    return;
  }
  await app.dataSource.query(
    `ALTER TABLE webhook_delivery ADD CONSTRAINT refuse_counted CHECK (attempts = 0 OR ${q('listenerId')} <> ${listenerId})`,
  );
}

/** Connection settings two app instances can share: the server database, or an SQLite file. */
function sharedConnection(database: TestDatabase): { connection: DataSourceOptions; cleanUp: () => void } {
  if (database !== 'sqlite') return { connection: connectionOptions(database), cleanUp: () => undefined };
  const file = join(tmpdir(), `webhook-shared-${process.pid}-${Date.now()}.sqlite`);
  return { connection: { type: 'better-sqlite3', database: file }, cleanUp: () => rmSync(file, { force: true }) };
}

async function countWhere(options: DataSourceOptions, space: number): Promise<{ claimed: number; succeeded: number }> {
  const dataSource = await new DataSource(options).initialize();
  try {
    const q = (name: string) => dataSource.driver.escape(name);
    const rows = await dataSource.query(
      `SELECT SUM(CASE WHEN ${q('leaseOwner')} IS NOT NULL THEN 1 ELSE 0 END) AS claimed, SUM(CASE WHEN state = 'SUCCEEDED' THEN 1 ELSE 0 END) AS succeeded, COUNT(*) AS total` +
        ` FROM webhook_delivery WHERE ${q('linkedSpaceId')} = ${options.type === 'postgres' ? '$1' : '?'}`,
      [space],
    );
    expect(Number(rows[0].total)).toBe(10);
    return { claimed: Number(rows[0].claimed ?? 0), succeeded: Number(rows[0].succeeded ?? 0) };
  } finally {
    await dataSource.destroy();
  }
}
