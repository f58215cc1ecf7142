import {
  WebhookDeliveryService,
  WebhookIdentityService,
  WebhookListenerService,
  type WebhookListener,
  WebhookNotFoundError,
  WebhookModule,
  WebhookUrlService,
  WEBHOOK_ENTITIES,
  type WebhookModuleOptions,
} from '../../lib/index.js';
import { WebhookEvent } from '../../lib/model/webhook-event.entity.js';
import { MaintenanceStore } from '../../lib/scheduling/maintenance.store.js';
import { WebhookMaintenance } from '../../lib/scheduling/webhook-maintenance.service.js';
import { WEBHOOK_SCHEDULER_REGISTRY, type SchedulerRegistry } from '../../lib/scheduling/scheduler.js';
import { connectionOptions, describeOnlyOn, selectedDatabases } from '../src/databases.js';
import { LogCollector } from '../src/log-collector.js';
import { StatementCounter } from '../src/statement-counter.js';
import { Order, OrderState } from '../src/order.entity.js';
import { answer, TestReceiver, waitFor } from '../src/receiver.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, HOST_ENTITIES, succeededDeliveries, type TestApp } from '../src/test-app.js';
import { TypeOrmModule } from '@nestjs/typeorm';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HOUR = 3_600_000;
/** Jobs are called directly here; their timers are too slow to interfere. */
const MANUAL: WebhookModuleOptions = {
  worker: { enabled: true },
  security: { allowPrivateNetworks: true },
  delivery: { pollIntervalMs: 100, perUrlConcurrency: 1, retrySchedule: [50] },
  scheduler: { lifecycleIntervalMs: HOUR, purgeIntervalMs: HOUR, retentionIntervalMs: HOUR },
  retention: { deletedListenerPurgeAfterMs: 0, deliveryLogTtlMs: HOUR },
};

/** Whether the listener is gone from the database: purged, no longer readable even as DELETED. */
function isPurged(app: TestApp, space: number, listenerId: number): Promise<boolean> {
  return app
    .get(WebhookListenerService)
    .read(space, listenerId)
    .then(
      () => false,
      (error) => error instanceof WebhookNotFoundError,
    );
}

describe.each(selectedDatabases())('scheduled jobs on %s', (database) => {
  let receiver: TestReceiver;
  let testApp: TestApp;
  let jobs: WebhookMaintenance;

  beforeAll(async () => {
    receiver = await new TestReceiver().start();
    testApp = await createTestApp(database, { webhook: MANUAL });
    jobs = testApp.app.get(WebhookMaintenance);
  });
  afterAll(async () => {
    receiver?.releaseHeld();
    await testApp?.close();
    await receiver?.stop();
  });

  const q = (name: string) => testApp.dataSource.driver.escape(name);
  const p = (index: number) => (database === 'postgres' ? `$${index}` : '?');
  async function rowsOfListener(table: 'webhook_delivery' | 'webhook_delivery_attempt', listenerId: number): Promise<number> {
    const [row] = await testApp.dataSource.query(`SELECT COUNT(*) AS n FROM ${table} WHERE ${q('listenerId')} = ${p(1)}`, [listenerId]);
    return Number(row.n);
  }
  async function saveOrders(space: number, count: number) {
    for (let i = 0; i < count; i++) await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });
  }

  it('moves a deleted listener DELETING → DELETED with a purge date, then purges it with its deliveries and attempts', async () => {
    const space = freshSpace();
    const listeners = testApp.get(WebhookListenerService);
    const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: receiver.url(`/purge/${space}`) });
    await saveOrders(space, 2);
    await waitFor(async () => (await succeededDeliveries(testApp, space)) === 2, 'both deliveries');
    expect(await rowsOfListener('webhook_delivery_attempt', listener.id)).toBe(2);

    await listeners.delete(space, listener.id);
    await jobs.finishDeletions();
    const deleted = await listeners.read(space, listener.id);
    expect(deleted.state).toBe('DELETED');
    expect(deleted.plannedPurgeDate).toBeInstanceOf(Date);

    await jobs.purge();
    await expect(listeners.read(space, listener.id)).rejects.toThrow(WebhookNotFoundError);
    expect(await rowsOfListener('webhook_delivery', listener.id)).toBe(0);
    expect(await rowsOfListener('webhook_delivery_attempt', listener.id)).toBe(0);
  });

  it('dates the purge no earlier than the retention after the deletion, to the second it keeps at least, and purges only after it', async () => {
    const purgeAfterMs = 2_500;
    const retaining = await createTestApp(database, {
      webhook: { ...MANUAL, retention: { deletedListenerPurgeAfterMs: purgeAfterMs, deliveryLogTtlMs: HOUR } },
      connection: testApp.dataSource.options,
      keepSchema: true,
    });
    try {
      const space = freshSpace();
      const listeners = retaining.get(WebhookListenerService);
      const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: receiver.url(`/purge-date/${space}`) });
      await listeners.delete(space, listener.id);
      const retainingJobs = retaining.app.get(WebhookMaintenance);
      await retainingJobs.finishDeletions();
      // Both written by the same statement, by the database's clock.
      const deleted = await listeners.read(space, listener.id);
      expect(deleted.state).toBe('DELETED');
      expect(deleted.plannedPurgeDate!.getTime()).toBeGreaterThanOrEqual(deleted.updatedOn.getTime() + purgeAfterMs);
      expect(deleted.plannedPurgeDate!.getTime()).toBeLessThan(deleted.updatedOn.getTime() + purgeAfterMs + 1_500);

      await retainingJobs.purge();
      expect(await isPurged(retaining, space, listener.id)).toBe(false);
      await waitFor(async () => {
        await retainingJobs.purge();
        return isPurged(retaining, space, listener.id);
      }, 'the purge once the date has passed');
    } finally {
      await retaining.close();
    }
  });

  it('keeps a listener DELETING while a delivery is in flight, and cancels the ones not yet sent', async () => {
    const space = freshSpace();
    receiver.script(`/held/${space}`, receiver.hold);
    const listeners = testApp.get(WebhookListenerService);
    const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: receiver.url(`/held/${space}`) });
    await saveOrders(space, 3);
    await waitFor(() => receiver.to(`/held/${space}`).length === 1, 'one request in flight');

    await listeners.delete(space, listener.id);
    await jobs.finishDeletions();
    expect((await listeners.read(space, listener.id)).state).toBe('DELETING');
    const deliveries = testApp.get(WebhookDeliveryService);
    const states = async () =>
      (await deliveries.searchDeliveries(space, { orderBys: [{ fieldName: 'id', sorting: 'ASC' }] })).map((d) => String(d.state)).sort();
    await waitFor(async () => (await states()).join() === 'CANCELLED,CANCELLED,PENDING', 'the two unsent deliveries to be cancelled');

    receiver.releaseHeld();
    await waitFor(async () => (await states()).includes('SUCCEEDED'), 'the request in flight to end');
    await jobs.finishDeletions();
    expect((await listeners.read(space, listener.id)).state).toBe('DELETED');
    expect(receiver.to(`/held/${space}`)).toHaveLength(1);
  });

  it('finishes and purges URLs and identities once no live listener uses them', async () => {
    const space = freshSpace();
    const urls = testApp.get(WebhookUrlService);
    const identities = testApp.get(WebhookIdentityService);
    const listeners = testApp.get(WebhookListenerService);
    const url = await urls.create(space, { name: 'u', url: 'https://unused.example.com/x' });
    const identity = await identities.create(space, { name: 'i' });
    const listener = await listeners.create(space, {
      name: 'l',
      entity: 'Order',
      url: url.id,
      identity: identity.id,
      state: 'INACTIVE' as never,
    });
    await listeners.delete(space, listener.id);
    await urls.delete(space, url.id);
    await identities.delete(space, identity.id);

    await jobs.finishDeletions();
    expect((await urls.read(space, url.id)).state).toBe('DELETED');
    expect((await identities.read(space, identity.id)).state).toBe('DELETED');
    await jobs.purge();
    await expect(listeners.read(space, listener.id)).rejects.toThrow(WebhookNotFoundError);
    await expect(urls.read(space, url.id)).rejects.toThrow(WebhookNotFoundError);
    await expect(identities.read(space, identity.id)).rejects.toThrow(WebhookNotFoundError);
  });

  it('removes only finished deliveries older than the retention, with their attempts', async () => {
    const space = freshSpace();
    const listener = await testApp
      .get(WebhookListenerService)
      .create(space, { name: 'l', entity: 'Order', url: receiver.url(`/retention/${space}`) });
    await saveOrders(space, 4);
    const deliveries = testApp.get(WebhookDeliveryService);
    await waitFor(async () => (await succeededDeliveries(testApp, space)) === 4, 'four deliveries');
    const [old1, old2] = await deliveries.searchDeliveries(space, { orderBys: [{ fieldName: 'id', sorting: 'ASC' }] });
    for (const delivery of [old1, old2]) {
      // As if they had finished two hours ago: a finished delivery's due time is when it finished.
      await testApp.dataSource.query(
        `UPDATE webhook_delivery SET ${q('completedAt')} = ${p(1)}, ${q('nextAttemptAt')} = ${p(2)} WHERE id = ${p(3)}`,
        [Date.now() - 2 * HOUR, Date.now() - 2 * HOUR, delivery.id],
      );
    }

    await jobs.expireDeliveryLog();
    const left = await deliveries.searchDeliveries(space, {});
    expect(left.map((d) => d.id)).not.toContain(old1.id);
    expect(left.map((d) => d.id)).not.toContain(old2.id);
    expect(left).toHaveLength(2);
    expect(await rowsOfListener('webhook_delivery_attempt', listener.id)).toBe(2);
  });

  it('keeps a finished delivery that is redelivered while the retention job removes it', async () => {
    const space = freshSpace();
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(`/redelivered/${space}`) });
    await saveOrders(space, 1);
    const deliveries = testApp.get(WebhookDeliveryService);
    await waitFor(async () => (await succeededDeliveries(testApp, space)) === 1, 'the delivery');
    const [delivery] = await deliveries.searchDeliveries(space, {});
    await testApp.dataSource.query(`UPDATE webhook_delivery SET ${q('nextAttemptAt')} = ${p(1)} WHERE id = ${p(2)}`, [
      Date.now() - 2 * HOUR,
      delivery.id,
    ]);
    // The job has read the ids of the old finished deliveries when the delivery is redelivered.
    const store = testApp.get(MaintenanceStore) as unknown as { deliveryIds(where: object): Promise<number[]> };
    const readIds = store.deliveryIds.bind(store);
    let redelivered = false;
    store.deliveryIds = async (where) => {
      const ids = await readIds(where);
      if (!redelivered && ids.includes(delivery.id)) {
        redelivered = true;
        await deliveries.redeliver(space, delivery.id);
      }
      return ids;
    };
    try {
      await jobs.expireDeliveryLog();
    } finally {
      store.deliveryIds = readIds;
    }

    expect(redelivered).toBe(true);
    await waitFor(() => receiver.to(`/redelivered/${space}`).length === 2, 'the redelivery');
    await waitFor(async () => (await deliveries.searchDeliveries(space, {}))[0]?.attempts === 2, 'its second attempt in the log');
  });

  it('purges and expires once soon after the start, also when their intervals are long', async () => {
    // SQLite in a file, which outlives the first instance.
    const file = join(tmpdir(), `webhook-first-run-${process.pid}.sqlite`);
    const connection = database === 'sqlite' ? ({ type: 'better-sqlite3', database: file } as const) : testApp.dataSource.options;
    const first = await createTestApp(database, { webhook: MANUAL, connection, keepSchema: database !== 'sqlite' });
    const space = freshSpace();
    let kept: WebhookListener;
    let removed: WebhookListener;
    try {
      const listeners = first.get(WebhookListenerService);
      kept = await listeners.create(space, { name: 'kept', entity: 'Order', url: receiver.url(`/first-run/${space}`) });
      await first.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });
      await waitFor(async () => (await succeededDeliveries(first, space)) === 1, 'the delivery');
      removed = await listeners.create(space, { name: 'removed', entity: 'Order', url: receiver.url(`/first-run/${space}`) });
      await listeners.delete(space, removed.id);
      await first.app.get(WebhookMaintenance).finishDeletions();
      expect((await listeners.read(space, removed.id)).state).toBe('DELETED');
    } finally {
      await first.close();
    }

    // The next instance, whose purge and retention run every hour.
    const restarted = await createTestApp(database, {
      webhook: {
        ...MANUAL,
        scheduler: { lifecycleIntervalMs: 30, purgeIntervalMs: HOUR, retentionIntervalMs: HOUR },
        retention: { deletedListenerPurgeAfterMs: 0, deliveryLogTtlMs: 0 },
      },
      connection,
      keepSchema: true,
    });
    try {
      const deliveries = restarted.get(WebhookDeliveryService);
      await waitFor(
        async () => (await deliveries.countDeliveries(space)) === 0 && (await isPurged(restarted, space, removed.id)),
        'the finished delivery to expire and the deleted listener to be purged',
      );
      expect((await restarted.get(WebhookListenerService).read(space, kept.id)).state).toBe('ACTIVE');
    } finally {
      await restarted.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
    }
  });

  it('keeps an event without deliveries for a minute at least, whatever the retention: its deliveries may still be being written', async () => {
    const instant = await createTestApp(database, {
      webhook: { ...MANUAL, retention: { deletedListenerPurgeAfterMs: 0, deliveryLogTtlMs: 0 } },
      connection: testApp.dataSource.options,
      keepSchema: true,
    });
    try {
      const events = instant.dataSource.getRepository(WebhookEvent);
      const event = { linkedSpaceId: freshSpace(), entityName: 'Order', listenerEntityId: 1, entityId: '1', state: 'CONFIRMED' };
      const twoHoursAgo = Date.now() - 2 * HOUR;
      const [young, , youngOfAnotherZone, youngUntimed, oldUntimed] = await events.save([
        { ...event, occurredAt: Date.now() },
        // Removed: older than a minute and than the retention.
        { ...event, occurredAt: twoHoursAgo },
        { ...event, occurredAt: Date.now() },
        // Recorded before occurredAt existed: told by createdOn.
        { ...event, occurredAt: null },
        { ...event, occurredAt: null },
      ]);
      // As an instance whose time zone is two hours behind writes createdOn, a date without a zone.
      await events.update(youngOfAnotherZone.id, { createdOn: new Date(twoHoursAgo) });
      // As the module wrote it, by this process's clock (the column's default is the database's).
      await events.update(youngUntimed.id, { createdOn: new Date() });
      await events.update(oldUntimed.id, { createdOn: new Date(twoHoursAgo) });

      await instant.get(WebhookMaintenance).expireDeliveryLog();
      const left = (await events.findBy({ linkedSpaceId: event.linkedSpaceId })).map(({ id }) => id).sort((a, b) => a - b);
      expect(left).toEqual([young.id, youngOfAnotherZone.id, youngUntimed.id]);
    } finally {
      await instant.close();
    }
  });

  it('runs the jobs on their timers, and none at all when the worker is disabled', async () => {
    const timed = await createTestApp(database, {
      webhook: { ...MANUAL, scheduler: { lifecycleIntervalMs: 30, purgeIntervalMs: 30, retentionIntervalMs: 30 } },
      connection: testApp.dataSource.options,
      keepSchema: true,
    });
    try {
      const space = freshSpace();
      const listener = await timed
        .get(WebhookListenerService)
        .create(space, { name: 'l', entity: 'Order', url: 'https://timed.example.com/x' });
      await timed.get(WebhookListenerService).delete(space, listener.id);
      await waitFor(() => isPurged(timed, space, listener.id), 'the timers to delete and purge the listener');
    } finally {
      await timed.close();
    }
    const idle = await createTestApp(database, {
      webhook: { ...MANUAL, worker: { enabled: false } },
      connection: testApp.dataSource.options,
      keepSchema: true,
    });
    try {
      expect(idle.app.get<SchedulerRegistry>(WEBHOOK_SCHEDULER_REGISTRY).getIntervals()).toEqual([]);
    } finally {
      await idle.close();
    }
  });
});

describe.each(selectedDatabases())("the cancelling of a deleted listener's deliveries on %s", (database) => {
  it('goes through them 500 at a time, each batch a statement of its own', async () => {
    const statements = new StatementCounter();
    const testApp = await createTestApp(database, { webhook: { ...MANUAL, worker: { enabled: false } }, executedStatements: statements });
    try {
      const space = freshSpace();
      const listeners = testApp.get(WebhookListenerService);
      const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: 'https://cancelled.example.com/x' });
      const orders = Array.from({ length: 1_201 }, () => ({ tenantId: space, state: OrderState.CONFIRMED }));
      await testApp.dataSource.transaction((manager) => manager.getRepository(Order).save(orders, { chunk: 200 }));
      await listeners.delete(space, listener.id);

      let cancelled = 0;
      const sent = await statements.count(async () => {
        cancelled = await testApp.get(MaintenanceStore).cancelDeliveriesOfDeletingListeners(Date.now());
      });

      expect(cancelled).toBe(1_201);
      expect(sent.filter((statement) => /^\s*UPDATE\b/i.test(statement) && statement.includes('webhook_delivery'))).toHaveLength(3);
      expect(await testApp.get(WebhookDeliveryService).countDeliveries(space)).toBe(1_201);
      const stillPending = { type: 'LEAF', fieldName: 'state', operator: 'EQUALS', value: 'PENDING' } as const;
      expect(await testApp.get(WebhookDeliveryService).countDeliveries(space, stillPending)).toBe(0);
    } finally {
      await testApp.close();
    }
  });
});

describeOnlyOn('postgres')('two instances running all jobs on one PostgreSQL', () => {
  it('reach the end state of one instance without an error', async () => {
    const receiver = await new TestReceiver().start();
    const collectors = [new LogCollector(), new LogCollector()];
    const options: WebhookModuleOptions = {
      worker: { enabled: true },
      security: { allowPrivateNetworks: true },
      delivery: { pollIntervalMs: 20, retrySchedule: [20] },
      scheduler: { lifecycleIntervalMs: 20, purgeIntervalMs: 20, retentionIntervalMs: 20 },
      retention: { deletedListenerPurgeAfterMs: 0, deliveryLogTtlMs: 0 },
    };
    const first = await createTestApp('postgres', { webhook: options, logger: collectors[0] });
    const second = await createTestApp('postgres', {
      webhook: options,
      logger: collectors[1],
      connection: connectionOptions('postgres'),
      keepSchema: true,
    });
    try {
      const space = freshSpace();
      receiver.script(`/two/${space}`, answer(200));
      const created = [];
      for (let i = 0; i < 20; i++) {
        created.push(
          await first.get(WebhookListenerService).create(space, { name: `l${i}`, entity: 'Order', url: receiver.url(`/two/${space}`) }),
        );
      }
      for (let i = 0; i < 10; i++) await first.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });
      await waitFor(() => receiver.to(`/two/${space}`).length >= 200, 'all 200 deliveries', 30_000);
      for (const listener of created) await second.get(WebhookListenerService).delete(space, listener.id);
      await waitFor(async () => (await first.get(WebhookListenerService).count(space)) === 0, 'every listener purged', 30_000);
      const [{ n }] = await first.dataSource.query(`SELECT COUNT(*) AS n FROM webhook_delivery WHERE "linkedSpaceId" = $1`, [space]);
      expect(Number(n)).toBe(0);
      expect(receiver.to(`/two/${space}`)).toHaveLength(200);
      expect(collectors.flatMap((c) => c.errors)).toEqual([]);
    } finally {
      await first.close();
      await second.close();
      await receiver.stop();
    }
  });
});

describe('timers with the host ScheduleModule', () => {
  it('go to the host SchedulerRegistry, each once, and leave it on shutdown', async () => {
    const { ScheduleModule, SchedulerRegistry: HostRegistry } = await import('@nestjs/schedule');
    const testApp = await createTestApp('sqlite', { webhook: { worker: { enabled: true } }, extraImports: [ScheduleModule.forRoot()] });
    const registry = testApp.app.get(HostRegistry);
    try {
      expect(testApp.app.get(WEBHOOK_SCHEDULER_REGISTRY)).toBe(registry);
      expect(registry.getIntervals().sort()).toEqual([
        'nestjs-webhook-listener:delivery-poll',
        'nestjs-webhook-listener:lifecycle',
        'nestjs-webhook-listener:purge',
        'nestjs-webhook-listener:retention',
      ]);
    } finally {
      await testApp.close();
    }
    expect(registry.getIntervals()).toEqual([]);
  });

  it('keep apart the timers of two module instances on two DataSources', async () => {
    const { ScheduleModule, SchedulerRegistry: HostRegistry } = await import('@nestjs/schedule');
    const second = TypeOrmModule.forRoot({
      ...connectionOptions('sqlite'),
      name: 'second',
      entities: [...HOST_ENTITIES, ...WEBHOOK_ENTITIES],
      synchronize: true,
    } as Parameters<typeof TypeOrmModule.forRoot>[0]);
    const testApp = await createTestApp('sqlite', {
      webhook: { worker: { enabled: true } },
      extraImports: [
        ScheduleModule.forRoot(),
        second,
        WebhookModule.forRoot({ worker: { enabled: true }, dataSourceName: 'second', isGlobal: false }),
      ],
    });
    const registry = testApp.app.get(HostRegistry);
    try {
      const jobs = ['delivery-poll', 'lifecycle', 'purge', 'retention'];
      expect(registry.getIntervals().sort()).toEqual([
        ...jobs.map((job) => `nestjs-webhook-listener:${job}`),
        ...jobs.map((job) => `nestjs-webhook-listener[second]:${job}`),
      ]);
    } finally {
      await testApp.close();
    }
    expect(registry.getIntervals()).toEqual([]);
  });
});
