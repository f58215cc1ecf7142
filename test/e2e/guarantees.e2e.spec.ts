import type { DataSource } from 'typeorm';
import { WebhookListenerService, WebhookPublisher, type WebhookModuleOptions } from '../../lib/index.js';
import { connectionOptions, selectedDatabases, type TestDatabase } from '../src/databases.js';
import { Order, OrderState } from '../src/order.entity.js';
import { answer, TestReceiver, waitFor, type ReceiverBehaviour } from '../src/receiver.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, type TestApp } from '../src/test-app.js';
import { ensureBuilt, startWorker, type WorkerProcess } from '../src/worker-processes.js';

// Real worker processes against a real database and receiver. They run when PostgreSQL is selected
// (MariaDB too, for the scale-out case), so `.ci/run` runs them.
const SCENARIO_TIMEOUT_MS = 240_000;
const EVENTS = 10_000;

const WORKER_OPTIONS: WebhookModuleOptions = {
  security: { allowPrivateNetworks: true },
  delivery: { concurrency: 64, batchSize: 200, pollIntervalMs: 100, timeoutMs: 2_000, leaseMs: 4_000, retrySchedule: [100, 200, 400] },
};

interface Figures {
  events: number;
  received: number;
  duplicates: number;
  missing: number;
  seconds: number;
}

function figures(receiver: TestReceiver, path: string, expected: number, startedAt: number): Figures {
  const ids = receiver.to(path).map((request) => String(request.headers['webhook-id']));
  const unique = new Set(ids).size;
  return {
    events: expected,
    received: ids.length,
    duplicates: ids.length - unique,
    missing: expected - unique,
    seconds: Number(((Date.now() - startedAt) / 1000).toFixed(1)),
  };
}

function report(title: string, result: Figures & { heldAtKill?: number; exitSeconds?: number }): void {
  process.stdout.write(`guarantee ${title}: ${JSON.stringify(result)}\n`);
}

async function publishMany(app: TestApp, space: number, count: number): Promise<void> {
  const publisher = app.get(WebhookPublisher);
  for (let start = 0; start < count; start += 500) {
    await app.dataSource.transaction(async (manager) => {
      for (let i = start; i < Math.min(count, start + 500); i++) {
        await publisher.publish({ entity: 'Order', entityId: i + 1, state: 'CONFIRMED', spaceId: space }, manager);
      }
    });
  }
}

async function leasedCount(dataSource: DataSource, space: number): Promise<number> {
  const q = (name: string) => dataSource.driver.escape(name);
  const p = dataSource.options.type === 'postgres' ? '$1' : '?';
  const [row] = await dataSource.query(
    `SELECT COUNT(*) AS n FROM webhook_delivery WHERE ${q('linkedSpaceId')} = ${p} AND state = 'PENDING' AND ${q('leaseUntil')} IS NOT NULL`,
    [space],
  );
  return Number(row.n);
}

const databases = selectedDatabases().filter((database): database is Exclude<TestDatabase, 'sqlite'> => database !== 'sqlite');

describe.each(databases)('guarantees with real worker processes on %s', (database) => {
  let producer: TestApp;
  let receiver: TestReceiver;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    ensureBuilt();
    receiver = await new TestReceiver().start();
    producer = await createTestApp(database, { webhook: { security: { allowPrivateNetworks: true } } });
  }, SCENARIO_TIMEOUT_MS);
  afterEach(async () => {
    for (const worker of workers.splice(0)) {
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
      await worker.exited;
    }
  });
  afterAll(async () => {
    await producer?.close();
    await receiver?.stop();
  });

  async function listen(path: string, behaviour?: ReceiverBehaviour): Promise<number> {
    const space = freshSpace();
    if (behaviour) receiver.script(path, behaviour);
    await producer.get(WebhookListenerService).create(space, { name: 'guarantee', entity: 'Order', url: receiver.url(path) });
    return space;
  }

  async function spawnWorkers(count: number, options: WebhookModuleOptions = WORKER_OPTIONS): Promise<WorkerProcess[]> {
    const started = await Promise.all(Array.from({ length: count }, () => startWorker(connectionOptions(database), options)));
    workers.push(...started);
    return started;
  }

  it(
    'scale-out: three instances share 10 000 events, each delivered exactly once',
    async () => {
      const path = `/scale/${Date.now()}`;
      const space = await listen(path);
      await spawnWorkers(3);
      const startedAt = Date.now();
      await publishMany(producer, space, EVENTS);
      await waitFor(
        () => new Set(receiver.to(path).map((r) => r.headers['webhook-id'])).size === EVENTS,
        'all events',
        SCENARIO_TIMEOUT_MS,
      );
      const result = figures(receiver, path, EVENTS, startedAt);
      report(`scale-out on ${database}`, result);
      expect(result).toMatchObject({ duplicates: 0, missing: 0 });
    },
    SCENARIO_TIMEOUT_MS,
  );

  if (database !== 'postgres') return;

  it(
    'scale-out with one of three instances killed midway: nothing missing',
    async () => {
      const path = `/scale-kill/${Date.now()}`;
      const space = await listen(path);
      const [victim] = await spawnWorkers(3);
      const startedAt = Date.now();
      await publishMany(producer, space, EVENTS);
      await waitFor(() => receiver.to(path).length >= EVENTS / 3, 'a third of the events');
      victim.child.kill('SIGKILL');
      await victim.exited;
      await waitFor(
        () => new Set(receiver.to(path).map((r) => r.headers['webhook-id'])).size === EVENTS,
        'all events',
        SCENARIO_TIMEOUT_MS,
      );
      const result = figures(receiver, path, EVENTS, startedAt);
      report('scale-out with a kill', result);
      expect(result.missing).toBe(0);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'crash: an instance killed with SIGKILL while deliveries are in flight loses nothing; duplicates stay within what it held',
    async () => {
      const path = `/crash/${Date.now()}`;
      const space = await listen(path);
      const [first] = await spawnWorkers(1);
      const startedAt = Date.now();
      await publishMany(producer, space, EVENTS);
      await waitFor(() => receiver.to(path).length >= EVENTS / 4, 'a quarter of the events');
      first.child.kill('SIGKILL');
      await first.exited;
      const heldAtKill = await leasedCount(producer.dataSource, space);
      await spawnWorkers(1);
      await waitFor(
        () => new Set(receiver.to(path).map((r) => r.headers['webhook-id'])).size === EVENTS,
        'all events after the restart',
        SCENARIO_TIMEOUT_MS,
      );
      const result = figures(receiver, path, EVENTS, startedAt);
      report('crash', { ...result, heldAtKill });
      expect(result.missing).toBe(0);
      expect(result.duplicates).toBeLessThanOrEqual(heldAtKill);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'rollback storm: 1 000 transactions, half rolled back, deliver exactly the committed half',
    async () => {
      const path = `/storm/${Date.now()}`;
      const space = await listen(path);
      await spawnWorkers(2);
      const startedAt = Date.now();
      const orders = producer.dataSource.getRepository(Order);
      const committed: number[] = [];
      const runs = Array.from({ length: 1_000 }, (_, i) => i);
      for (let start = 0; start < runs.length; start += 50) {
        await Promise.allSettled(
          runs.slice(start, start + 50).map((i) =>
            producer.dataSource.transaction(async (manager) => {
              const order = await manager.save(Order, { tenantId: space, state: OrderState.CONFIRMED });
              if (i % 2 === 1) throw new Error('rolled back on purpose');
              committed.push(order.id);
            }),
          ),
        );
      }
      expect(committed).toHaveLength(500);
      expect(await orders.countBy({ tenantId: space })).toBe(500);
      await waitFor(() => receiver.to(path).length >= 500, 'the committed half', SCENARIO_TIMEOUT_MS);
      const delivered = receiver.to(path).map((request) => JSON.parse(request.rawBody.toString()).entityId as number);
      const result = figures(receiver, path, 500, startedAt);
      report('rollback storm', result);
      expect(delivered.sort((a, b) => a - b)).toEqual(committed.sort((a, b) => a - b));
      expect(result).toMatchObject({ duplicates: 0, missing: 0 });
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'shutdown: SIGTERM during a busy run exits within the bound, and a restarted instance delivers the rest',
    async () => {
      const path = `/sigterm/${Date.now()}`;
      const slow: ReceiverBehaviour = (_request, _index, response) => setTimeout(() => response.writeHead(200).end('ok'), 50);
      const space = await listen(path, slow);
      const options: WebhookModuleOptions = {
        ...WORKER_OPTIONS,
        delivery: { ...WORKER_OPTIONS.delivery, timeoutMs: 1_000, leaseMs: 30_000 },
      };
      const [first] = await spawnWorkers(1, options);
      const startedAt = Date.now();
      await publishMany(producer, space, 3_000);
      await waitFor(() => receiver.to(path).length >= 500, '500 deliveries');
      const termAt = Date.now();
      first.child.kill('SIGTERM');
      const exit = await first.exited;
      const exitSeconds = (exit.at - termAt) / 1000;
      // Nest closes the application, then ends the process with the signal it received.
      expect(exit.code === 0 || exit.signal === 'SIGTERM').toBe(true);
      // The bound: requests in flight get delivery.timeoutMs, then results are written and TypeORM closes.
      expect(exitSeconds).toBeLessThan(1 + 2 * 1 + 1);
      expect(await leasedCount(producer.dataSource, space)).toBe(0);

      receiver.script(path, answer(200));
      await spawnWorkers(1, options);
      await waitFor(
        () => new Set(receiver.to(path).map((r) => r.headers['webhook-id'])).size === 3_000,
        'the rest after the restart',
        SCENARIO_TIMEOUT_MS,
      );
      const result = figures(receiver, path, 3_000, startedAt);
      report('shutdown', { ...result, exitSeconds });
      expect(result.missing).toBe(0);
    },
    SCENARIO_TIMEOUT_MS,
  );
});
