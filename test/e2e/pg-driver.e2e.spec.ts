import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';
import { WebhookListenerService } from '../../lib/index.js';
import { describeOnlyOn } from '../src/databases.js';
import { Order, OrderState } from '../src/order.entity.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, type TestApp } from '../src/test-app.js';

interface PgClient {
  query(...args: unknown[]): unknown;
}

/**
 * The most queries any pg client of the pool was given before the one before had answered: pg 8
 * queues the second with a deprecation warning, and pg 9 refuses it.
 */
function watchQueriesPerClient(driver: PostgresDriver): { most: number } {
  const seen = { most: 0 };
  const watched = new WeakSet<PgClient>();
  (driver.master as { on(event: 'acquire', listener: (client: PgClient) => void): void }).on('acquire', (client) => {
    if (watched.has(client)) return;
    watched.add(client);
    const query = client.query.bind(client);
    let running = 0;
    client.query = (...args: unknown[]) => {
      seen.most = Math.max(seen.most, ++running);
      const answered = () => running--;
      const result = query(...args) as Promise<unknown>;
      result.then(answered, answered);
      return result;
    };
  });
  return seen;
}

describeOnlyOn('postgres')('capture on the pg driver', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await createTestApp('postgres');
  });
  afterAll(() => testApp?.close());

  it('records the rows of one save() one after another, never giving a connection a query while it runs one', async () => {
    const queries = watchQueriesPerClient(testApp.dataSource.driver as PostgresDriver);
    const space = freshSpace();
    const listeners = testApp.get(WebhookListenerService);
    for (const name of ['a', 'b']) await listeners.create(space, { name, entity: 'Order', url: `https://${name}.example.com/hook` });
    const repository = testApp.dataSource.getRepository(Order);

    const orders = await repository.save(Array.from({ length: 5 }, () => ({ tenantId: space, state: OrderState.CONFIRMED })));
    await testApp.dataSource.transaction((manager) =>
      manager.save(
        Order,
        orders.map((order) => ({ ...order, state: OrderState.SHIPPED })),
      ),
    );

    const events: { count: string }[] = await testApp.dataSource.query(
      'SELECT COUNT(*) AS count FROM webhook_event WHERE "linkedSpaceId" = $1',
      [space],
    );
    expect(Number(events[0].count)).toBe(10);
    expect(queries.most).toBe(1);
  });
});
