import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import type { DataSource } from 'typeorm';
import { WebhookDeliveryService, WebhookListenerService, WebhookPublisher, type WebhookModuleOptions } from '../../lib/index.js';
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

type Figures = {
  events: number;
  received: number;
  duplicates: number;
  missing: number;
  seconds: number;
};

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

function report(title: string, result: Figures & Record<string, number>): void {
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
      // Kill it while it holds leases, i.e. with deliveries in flight.
      await waitFor(async () => (await leasedCount(producer.dataSource, space)) > 0, 'leases held by the instance');
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
    'database restart: PostgreSQL restarted mid-run, the instance recovers by itself, logs the outage and loses nothing',
    async () => {
      const path = `/restart/${Date.now()}`;
      const space = await listen(path);
      const events = 6_000;
      await publishMany(producer, space, events);
      const [worker] = await spawnWorkers(1);
      const startedAt = Date.now();
      await waitFor(() => receiver.to(path).length >= 1_000, 'the first thousand deliveries');
      const restartStartedAt = Date.now();
      execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', readdirSync('/etc/postgresql')[0], 'main', 'restart'], {
        stdio: 'inherit',
      });
      const restartSeconds = (Date.now() - restartStartedAt) / 1000;
      await waitFor(
        () => new Set(receiver.to(path).map((r) => r.headers['webhook-id'])).size === events,
        'all events after the restart',
        SCENARIO_TIMEOUT_MS,
      );
      const result = figures(receiver, path, events, startedAt);
      const outageLines = worker.output
        .join('')
        .split('\n')
        .filter((line) => /ERROR/.test(line)).length;
      report('database restart', { ...result, restartSeconds, outageLines });
      expect(result.missing).toBe(0);
      expect(outageLines).toBeGreaterThan(0);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'chaos receiver: every delivery ends as the policy says, and the attempt log matches what the receiver saw',
    async () => {
      const path = `/chaos/${Date.now()}`;
      // Long enough that a worker process starved of CPU for a moment (two worker processes, the
      // database and the receiver share the machine) does not see its deadline pass before it reads
      // an answer that arrived in time: the log would then rightly say TIMEOUT where the receiver answered.
      const timeoutMs = 1_000;
      const seen = new Map<string, string[]>();
      let seed = 20261127;
      const nextRandom = () => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed / 2147483648;
      };
      const chaos: ReceiverBehaviour = (request, _index, response, socket) => {
        const id = String(request.headers['webhook-id']);
        const roll = nextRandom();
        const outcome = roll < 0.2 ? '500' : roll < 0.3 ? 'slow' : roll < 0.35 ? 'reset' : roll < 0.4 ? '429' : '200';
        seen.set(id, [...(seen.get(id) ?? []), outcome]);
        if (outcome === '500') response.writeHead(500).end('chaos');
        else if (outcome === '429') response.writeHead(429, { 'retry-after': '1' }).end();
        else if (outcome === 'reset') socket.destroy();
        else if (outcome === 'slow') setTimeout(() => response.destroyed || response.writeHead(200).end('late'), timeoutMs * 3);
        else response.writeHead(200).end('ok');
      };
      const space = await listen(path, chaos);
      const retrySchedule = [50, 100, 150];
      await spawnWorkers(2, { ...WORKER_OPTIONS, delivery: { ...WORKER_OPTIONS.delivery, timeoutMs, retrySchedule } });
      const startedAt = Date.now();
      const events = 2_000;
      await publishMany(producer, space, events);
      const deliveries = producer.get(WebhookDeliveryService);
      await waitFor(
        async () =>
          (await deliveries.countDeliveries(space, { type: 'LEAF', fieldName: 'state', operator: 'EQUALS', value: 'PENDING' })) === 0,
        'every delivery to end',
        SCENARIO_TIMEOUT_MS,
      );

      const expectedLog = (outcome: string): [string, number | null] =>
        outcome === 'slow'
          ? ['TIMEOUT', null]
          : outcome === 'reset'
            ? ['NETWORK_ERROR', null]
            : outcome === '200'
              ? ['SUCCEEDED', 200]
              : ['HTTP_ERROR', Number(outcome)];
      const logged = new Map<number, [string, number | null][]>();
      for (let page = 0; ; page++) {
        const attempts = await deliveries.searchAttempts(space, {
          orderBys: [
            { fieldName: 'deliveryId', sorting: 'ASC' },
            { fieldName: 'attemptNumber', sorting: 'ASC' },
          ],
          startingEntity: page * 100,
        });
        for (const attempt of attempts)
          logged.set(attempt.deliveryId, [...(logged.get(attempt.deliveryId) ?? []), [attempt.outcome, attempt.statusCode]]);
        if (attempts.length < 100) break;
      }
      let succeeded = 0;
      let abandoned = 0;
      let mismatches = 0;
      const mismatchExamples: unknown[] = [];
      for (let page = 0; ; page++) {
        const batch = await deliveries.searchDeliveries(space, { startingEntity: page * 100 });
        for (const delivery of batch) {
          const received = seen.get(`msg_${delivery.id}`) ?? [];
          const policyEnd =
            received.at(-1) === '200' ? 'SUCCEEDED' : received.length === retrySchedule.length + 1 ? 'ABANDONED' : 'UNEXPECTED';
          if (policyEnd !== delivery.state || JSON.stringify(received.map(expectedLog)) !== JSON.stringify(logged.get(delivery.id) ?? [])) {
            mismatches++;
            if (mismatchExamples.length < 5)
              mismatchExamples.push({ id: delivery.id, state: delivery.state, received, logged: logged.get(delivery.id) ?? [] });
          }
          if (delivery.state === 'SUCCEEDED') succeeded++;
          if (delivery.state === 'ABANDONED') abandoned++;
        }
        if (batch.length < 100) break;
      }
      const result = {
        ...figures(receiver, path, events, startedAt),
        duplicates: 0,
        missing: events - succeeded - abandoned,
        succeeded,
        abandoned,
        mismatches,
      };
      report('chaos receiver', result);
      if (mismatches > 0)
        console.log(`chaos receiver: deliveries whose log differs from what the receiver saw: ${JSON.stringify(mismatchExamples)}`);
      expect(succeeded + abandoned).toBe(events);
      expect(mismatches).toBe(0);
      expect(abandoned).toBeGreaterThan(0);
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
