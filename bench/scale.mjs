// P4–P6: the module with many listeners, with a large backlog, and with one stalled receiver.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebhookIdentityService, WebhookListener, WebhookListenerService, WebhookUrl } from '../dist/esm/index.js';
import { ListenerMatchCache } from '../dist/esm/capture/listener-match.cache.js';
import { bootApp, now, Order, progress, publishOrders, removeDatabaseFile } from './app.mjs';

/** Options of the delivery worker in every throughput measure: 64 requests in flight. */
export const THROUGHPUT_DELIVERY = { concurrency: 64, perUrlConcurrency: 64, batchSize: 500 };

/** `saves` sequential calls of `save`, after `warmUp` more; ms per call. */
export async function timeSaves(save, saves, { warmUp = 50 } = {}) {
  for (let i = 0; i < warmUp; i++) await save();
  const start = now();
  for (let i = 0; i < saves; i++) await save();
  return (now() - start) / saves;
}

/** A save() of one CONFIRMED Order in `tenantId` through `manager` (a DataSource or an EntityManager). */
export function orderSave(manager, tenantId) {
  const repository = manager.getRepository(Order);
  return () => repository.save({ tenantId, state: 'CONFIRMED' });
}

/**
 * P4: the save of P3 with 10 matching listeners, once with only those listeners stored and once
 * beside 100 000 listeners in 1 000 spaces (each space: 10 for Order, 90 for Invoice). The listeners
 * of a space are cached for a few seconds, so each state is timed twice, in alternating blocks: saves
 * as they come (the list in memory), and saves that each read the listeners from the table (the
 * cache emptied before each), where the number stored could show.
 */
export async function listenerScale(database, saves, block) {
  const file = join(tmpdir(), `bench-scale-${process.pid}.sqlite`);
  removeDatabaseFile(file);
  const { app, dataSource } = await bootApp(database, file, { worker: { enabled: false } }, { fresh: true });
  const listeners = app.get(WebhookListenerService);
  for (let i = 0; i < 10; i++) await listeners.create(1, { name: `l${i}`, entity: 'Order', url: 'https://bench.example.com/hook' });
  const cache = app.get(ListenerMatchCache);
  const save = orderSave(dataSource, 1);
  const savers = {
    cached: save,
    read: () => {
      cache.invalidate(1, 'Order');
      return save();
    },
  };
  const alone = await alternating(savers, saves, block);
  await insertListeners(dataSource, [1], 0, 90);
  const otherSpaces = Array.from({ length: 999 }, (_, i) => i + 2);
  for (let i = 0; i < otherSpaces.length; i += 50) await insertListeners(dataSource, otherSpaces.slice(i, i + 50), 10, 90);
  if (database === 'postgres') await dataSource.query('ANALYZE');
  const besideMany = await alternating(savers, saves, block);
  const stored = await dataSource.getRepository(WebhookListener).count();
  await app.close();
  removeDatabaseFile(file);
  return { alone, besideMany, stored };
}

/** Ms per call of each of `savers`, `saves` calls each, taking turns in blocks of `block` after a block of warm-up each. */
export async function alternating(savers, saves, block) {
  const totalMs = Object.fromEntries(Object.keys(savers).map((key) => [key, 0]));
  for (const save of Object.values(savers)) await timeSaves(save, block);
  const blocks = Math.max(1, Math.round(saves / block));
  for (let round = 0; round < blocks; round++) {
    for (const [key, save] of Object.entries(savers)) totalMs[key] += (await timeSaves(save, block, { warmUp: 0 })) * block;
  }
  return Object.fromEntries(Object.entries(totalMs).map(([key, total]) => [key, total / (blocks * block)]));
}

/** Listeners for Order and for Invoice in each space, written in bulk: creating 100 000 one by one would take minutes. */
async function insertListeners(dataSource, spaceIds, orderListeners, invoiceListeners) {
  const managed = (spaceId, name) => ({ linkedSpaceId: spaceId, name, state: 'ACTIVE', plannedPurgeDate: null });
  const urls = spaceIds.map((spaceId) => ({ ...managed(spaceId, 'hook'), url: `https://s${spaceId}.bench.example.com/hook` }));
  const { identifiers } = await dataSource.createQueryBuilder().insert().into(WebhookUrl).values(urls).execute();
  const rows = spaceIds.flatMap((spaceId, index) =>
    Array.from({ length: orderListeners + invoiceListeners }, (_, n) => ({
      ...managed(spaceId, `bulk ${n}`),
      entity: n < orderListeners ? 'Order' : 'Invoice',
      entityStates: [],
      notifyEveryChange: false,
      enablePayloadSignatureAndState: true,
      url: { id: identifiers[index].id },
      identity: null,
    })),
  );
  for (let i = 0; i < rows.length; i += 1_000)
    await dataSource
      .createQueryBuilder()
      .insert()
      .into(WebhookListener)
      .values(rows.slice(i, i + 1_000))
      .updateEntity(false)
      .execute();
}

/**
 * P5: a backlog of `count` pending deliveries (written straight into the tables, PostgreSQL), drained
 * by a worker in a process of its own: deliveries per second, and that process's peak RSS.
 * `execArgv` are Node options of that process (a smaller V8 heap, say).
 */
export async function backlogDrain(receiver, count, execArgv = []) {
  const { app, dataSource } = await bootApp(
    'postgres',
    null,
    { worker: { enabled: false }, security: { allowPrivateNetworks: true } },
    { fresh: true },
  );
  const identity = await app.get(WebhookIdentityService).create(1, { name: 'bench' });
  const listener = await app
    .get(WebhookListenerService)
    .create(1, { name: 'bench', entity: 'Order', url: receiver.url, identity: identity.id });
  const urlId = listener.url;
  progress(`P5: writing ${count} events and deliveries`);
  await dataSource.query(
    `INSERT INTO webhook_event ("linkedSpaceId", "entityName", "listenerEntityId", "entityId", state)
     SELECT 1, 'Order', 1001, n::text, 'CONFIRMED' FROM generate_series(1, $1) AS n`,
    [count],
  );
  await dataSource.query(
    `INSERT INTO webhook_delivery ("eventId", "listenerId", "urlId", "linkedSpaceId", state, attempts, "nextAttemptAt")
     SELECT id, $1, $2, 1, 'PENDING', 0, $3 FROM webhook_event ORDER BY id`,
    [listener.id, typeof urlId === 'object' ? urlId.id : urlId, Date.now()],
  );
  await dataSource.query('ANALYZE');
  await app.close();

  const reached = receiver.expect(count);
  const start = now();
  const worker = fork(new URL('./worker.mjs', import.meta.url), {
    execArgv,
    env: {
      ...process.env,
      BENCH_WORKER: JSON.stringify({
        database: 'postgres',
        webhook: { security: { allowPrivateNetworks: true }, signing: { schemes: ['standard-webhooks'] }, delivery: THROUGHPUT_DELIVERY },
      }),
    },
  });
  const { at } = await reached;
  const peakRssMiB = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${worker.pid}/status`, 'utf8'))[1]) / 1024;
  await new Promise((resolve) => {
    worker.on('exit', resolve);
    worker.send({ type: 'stop' });
  });
  return { perSecond: count / ((at - start) / 1000), peakRssMiB };
}

/**
 * P6: deliveries per second to four fast URLs, alone or beside slow URLs subscribed to the same
 * events. `slow`: the number of slow URLs, `stallMs`: how long they take to answer, `delivery`: the
 * worker's delivery options.
 */
export async function besideSlowReceivers(database, receiver, events, { slow, stallMs, delivery }) {
  const file = join(tmpdir(), `bench-stall-${process.pid}.sqlite`);
  removeDatabaseFile(file);
  const producer = await bootApp(database, file, { worker: { enabled: false }, security: { allowPrivateNetworks: true } }, { fresh: true });
  const listeners = producer.app.get(WebhookListenerService);
  const paths = ['/fast/1', '/fast/2', '/fast/3', '/fast/4', ...Array.from({ length: slow }, (_, i) => `/stall/${i + 1}`)];
  for (const path of paths) await listeners.create(1, { name: path, entity: 'Order', url: receiver.urlOf(path) });
  await publishOrders(producer, events);
  await producer.app.close();

  const fastDeliveries = 4 * events;
  const reached = receiver.expect(fastDeliveries, { pathPrefix: '/fast', stallMs });
  const start = now();
  const worker = await bootApp(
    database,
    file,
    { security: { allowPrivateNetworks: true }, signing: { schemes: ['standard-webhooks'] }, delivery },
    { fresh: false },
  );
  const { at } = await reached;
  await worker.app.close();
  removeDatabaseFile(file);
  return fastDeliveries / ((at - start) / 1000);
}
