import type { EntitySubscriberInterface, InsertEvent, Repository } from 'typeorm';
import { WebhookDeliveryService, WebhookListenerService, WebhookNotFoundError, type WebhookModuleOptions } from '../../lib/index.js';
import { DeliveryStore } from '../../lib/delivery/delivery.store.js';
import { ListenerHealthService } from '../../lib/delivery/listener-health.service.js';
import { WebhookMaintenance } from '../../lib/scheduling/webhook-maintenance.service.js';
import { describeOnlyOn } from '../src/databases.js';
import { Order, OrderState } from '../src/order.entity.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, type TestApp } from '../src/test-app.js';

const HOUR = 3_600_000;
/** Jobs are called directly here. */
const MANUAL: WebhookModuleOptions = {
  security: { allowPrivateNetworks: true },
  scheduler: { lifecycleIntervalMs: HOUR, purgeIntervalMs: HOUR, retentionIntervalMs: HOUR },
  retention: { deletedListenerPurgeAfterMs: 0 },
};

/**
 * How many turns of the microtask queue one side of a race waits before it begins: the failing
 * save() after the module's work, and then the work after the save(), each offset once, so that
 * some begin in the middle of the other's transaction if it spans several turns.
 */
const OFFSETS = 60;

/** Fails every save() of an order in one of `spaces` after its insert, as a host's own subscriber or constraint may. */
class RejectingSubscriber implements EntitySubscriberInterface<Order> {
  readonly spaces = new Set<number>();

  listenTo() {
    return Order;
  }

  afterInsert(event: InsertEvent<Order>): void {
    if (this.spaces.has(event.entity.tenantId)) throw new Error(`orders of space ${event.entity.tenantId} are refused`);
  }
}

describeOnlyOn('sqlite')("a save() of the host beside the module's own transactions on sqlite", () => {
  // TypeORM shares one query runner on SQLite and opens no transaction for a save() while one is
  // open: a save() that began in the middle of one of the module's transactions would run in it, and
  // when it failed, its rows would stay and commit with the module's.
  let testApp: TestApp;
  let orders: Repository<Order>;
  let listeners: WebhookListenerService;
  const rejecting = new RejectingSubscriber();

  beforeAll(async () => {
    testApp = await createTestApp('sqlite', { webhook: MANUAL });
    orders = testApp.dataSource.getRepository(Order);
    listeners = testApp.get(WebhookListenerService);
    testApp.dataSource.subscribers.push(rejecting);
  });
  afterAll(async () => {
    await testApp?.close();
  });

  const stateOf = (space: number, id: number): Promise<string> =>
    listeners.read(space, id).then(
      (listener) => listener.state,
      (error: unknown) => {
        if (error instanceof WebhookNotFoundError) return 'purged';
        throw error;
      },
    );

  /** Runs `job` beside a save() that fails after its insert, at every offset either way; the job's result is checked after each. */
  async function raceWithFailingSaves<T>(
    prepare: () => Promise<T>,
    job: (prepared: T) => Promise<unknown>,
    check: (prepared: T) => Promise<void>,
    { failedSavesMayStay = false } = {},
  ) {
    const rejectedSpace = freshSpace();
    rejecting.spaces.add(rejectedSpace);
    let failed = 0;
    for (let offset = -OFFSETS; offset <= OFFSETS; offset++) {
      const prepared = await prepare();
      const failingSave = afterMicrotasks(Math.max(offset, 0))
        .then(() => orders.save({ tenantId: rejectedSpace, state: OrderState.CONFIRMED }))
        .then(
          () => undefined,
          () => failed++,
        );
      await Promise.all([afterMicrotasks(Math.max(-offset, 0)).then(() => job(prepared)), failingSave]);
      await check(prepared);
    }
    expect(failed).toBe(2 * OFFSETS + 1);
    if (!failedSavesMayStay) expect(await orders.countBy({ tenantId: rejectedSpace })).toBe(0);
  }

  it('leaves no row of a failed save when a listener is deactivated beside it', async () => {
    const space = freshSpace();
    const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: 'https://receiver.example.com/hook' });
    const health = testApp.get(ListenerHealthService);
    await raceWithFailingSaves(
      async () => {
        const { version, state } = await listeners.read(space, listener.id);
        if (state !== 'ACTIVE') await listeners.update(space, { id: listener.id, version, state: 'ACTIVE' });
      },
      () => health.deactivate(listener.id, 'its receiver keeps failing'),
      async () => expect((await listeners.read(space, listener.id)).state).toBe('INACTIVE'),
    );
  });

  it('leaves no row of a failed save when the jobs finish deleting and purge listeners beside it', async () => {
    const space = freshSpace();
    const jobs = testApp.get(WebhookMaintenance);
    const deletedIds: number[] = [];
    await raceWithFailingSaves(
      async () => {
        const listener = await listeners.create(space, {
          name: 'l',
          entity: 'Order',
          url: 'https://receiver.example.com/hook',
          state: 'INACTIVE' as never,
        });
        await listeners.delete(space, listener.id);
        deletedIds.push(listener.id);
      },
      async () => {
        await jobs.finishDeletions();
        await jobs.purge();
      },
      async () => {
        // This round's listener is DELETED (or gone already); the previous one, past its purge date, is gone.
        const [current, previous] = deletedIds.slice(-2).reverse();
        expect(['DELETED', 'purged']).toContain(await stateOf(space, current));
        if (previous !== undefined) expect(await stateOf(space, previous)).toBe('purged');
      },
    );
  });

  it('records a row inserted outside a transaction once, and only if it stands, when a failing save() begins beside it', async () => {
    const space = freshSpace();
    await listeners.create(space, { name: 'l', entity: 'Order', url: 'https://receiver.example.com/hook' });
    const deliveries = testApp.get(WebhookDeliveryService);
    await raceWithFailingSaves(
      async () => undefined,
      // insert() opens no transaction; the failing save() may begin before or after its statement.
      () => orders.insert({ tenantId: space, state: OrderState.CONFIRMED }),
      async () => expect(await deliveries.countDeliveries(space)).toBe(await orders.countBy({ tenantId: space })),
    );
  });

  it('records an update once, and only if it stands, when a failing save() begins beside it', async () => {
    const space = freshSpace();
    await listeners.create(space, { name: 'l', entity: 'Order', url: 'https://receiver.example.com/hook' });
    const deliveries = testApp.get(WebhookDeliveryService);
    const { id } = await orders.save({ tenantId: space, state: OrderState.PENDING });
    const stored = async () => (await orders.findOneByOrFail({ id })).state;
    let round = 0;
    let changes = 1;
    await raceWithFailingSaves(
      stored,
      // A save() that begins inside the failing one's transaction is rolled back with it (TypeORM on SQLite).
      () => orders.save({ id, tenantId: space, state: round++ % 2 === 0 ? OrderState.CONFIRMED : OrderState.SHIPPED }),
      async (before) => {
        if ((await stored()) !== before) changes++;
        expect(await deliveries.countDeliveries(space)).toBe(changes);
      },
      // Here the failing save() may begin inside the update's own transaction and run in it, which
      // TypeORM does on SQLite with or without this module.
      { failedSavesMayStay: true },
    );
  });

  it("leaves no row of a failed save when a space's default identity is created beside it", async () => {
    const store = testApp.get(DeliveryStore);
    await raceWithFailingSaves(
      async () => freshSpace(),
      (space) => store.spaceDefaultKeys(space),
      async (space) => expect((await store.spaceDefaultKeys(space)).keyId).toEqual(expect.any(String)),
    );
  });
});

async function afterMicrotasks(turns: number): Promise<void> {
  for (let turn = 0; turn < turns; turn++) await Promise.resolve();
}
