import { QueryFailedError, type DataSource } from 'typeorm';
import { WebhookEvent, WebhookListenerService, WebhookTransactionEndedError } from '../../lib/index.js';
import { selectedDatabases } from '../src/databases.js';
import { LogCollector } from '../src/log-collector.js';
import { Order, OrderState, Parcel, ParcelState, Shipment } from '../src/order.entity.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, type TestApp } from '../src/test-app.js';

/**
 * TypeORM reports the rows of a save() to subscribers only once all its statements succeeded, and
 * reports every row given to an insert with a conflict clause, whether the database wrote it or not.
 */
describe.each(selectedDatabases())('writes that fail part-way or skip rows, on %s', (database) => {
  let testApp: TestApp;
  let dataSource: DataSource;
  const logs = new LogCollector();
  // PostgreSQL aborts a transaction at its first failed statement: its COMMIT then rolls back.
  const failedStatementAbortsTransaction = database === 'postgres';

  beforeAll(async () => {
    testApp = await createTestApp(database, { logger: logs });
    dataSource = testApp.dataSource;
  });
  afterAll(() => testApp.close());

  const orders = () => dataSource.getRepository(Order);

  async function listen(space: number, entity: string): Promise<void> {
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity, url: `https://${space}.example.com/hook` });
  }

  async function recorded(space: number): Promise<string[]> {
    const events = await dataSource.getRepository(WebhookEvent).find({ where: { linkedSpaceId: space }, order: { id: 'ASC' } });
    return events.map((event) => `${event.entityId}:${event.state}`);
  }

  async function committedOrders(space: number): Promise<string[]> {
    const rows = await orders().find({ where: { tenantId: space }, order: { id: 'ASC' } });
    return rows.map((row) => `${row.id}:${row.state}`);
  }

  /** A save() that inserts a new order and then fails to update an existing one (its space column is NOT NULL). */
  function newAndFailing(space: number, existing: Order): Partial<Order>[] {
    return [
      { tenantId: space, state: OrderState.CONFIRMED },
      { id: existing.id, tenantId: null as unknown as number, state: OrderState.SHIPPED },
    ];
  }

  it('refuses the commit of a transaction in which a save() failed after writing some of its rows', async () => {
    const space = freshSpace();
    await listen(space, 'Order');
    const existing = await orders().save({ tenantId: space, state: OrderState.PENDING });

    const committing = dataSource.transaction(async (manager) => {
      await manager.save(Order, newAndFailing(space, existing)).catch(() => undefined);
    });

    if (failedStatementAbortsTransaction) await committing;
    else await expect(committing).rejects.toThrow(WebhookTransactionEndedError);
    expect(await committedOrders(space)).toEqual([`${existing.id}:PENDING`]);
    expect(await recorded(space)).toEqual([`${existing.id}:PENDING`]);
  });

  it('refuses it for two updates written concurrently, one of which fails', async () => {
    const space = freshSpace();
    await listen(space, 'Order');
    const [first, second] = await orders().save([
      { tenantId: space, state: OrderState.PENDING },
      { tenantId: space, state: OrderState.PENDING },
    ]);

    const committing = dataSource.transaction(async (manager) => {
      const changes = [
        { id: first.id, tenantId: null as unknown as number, state: OrderState.SHIPPED },
        { id: second.id, tenantId: space, state: OrderState.CONFIRMED },
      ];
      await manager.save(Order, changes).catch(() => undefined);
    });

    if (failedStatementAbortsTransaction) await committing;
    else await expect(committing).rejects.toThrow(WebhookTransactionEndedError);
    expect(await committedOrders(space)).toEqual([`${first.id}:PENDING`, `${second.id}:PENDING`]);
    expect(await recorded(space)).toEqual([`${first.id}:PENDING`, `${second.id}:PENDING`]);
  });

  it('commits after a save() that failed at its only statement, and after one whose nested transaction rolled back', async () => {
    const space = freshSpace();
    await listen(space, 'Order');
    const existing = await orders().save({ tenantId: space, state: OrderState.PENDING });

    await dataSource.transaction(async (manager) => {
      await manager.save(Order, { tenantId: space, state: OrderState.CONFIRMED });
      await manager.save(Order, newAndFailing(space, existing)[1]).catch(() => undefined);
    });
    await dataSource.transaction(async (manager) => {
      await manager.transaction((nested) => nested.save(Order, newAndFailing(space, existing))).catch(() => undefined);
      await manager.save(Order, { tenantId: space, state: OrderState.SHIPPED });
    });

    const rows = await committedOrders(space);
    expect(rows.map((row) => row.split(':')[1])).toEqual(
      failedStatementAbortsTransaction ? ['PENDING', 'SHIPPED'] : ['PENDING', 'CONFIRMED', 'SHIPPED'],
    );
    expect(await recorded(space)).toEqual(rows);
  });

  it('logs an error naming the entity when a save() outside a transaction fails after writing some of its rows', async () => {
    const space = freshSpace();
    await listen(space, 'Order');
    const existing = await orders().save({ tenantId: space, state: OrderState.PENDING });
    logs.errors.length = 0;

    await expect(orders().save(newAndFailing(space, existing), { transaction: false })).rejects.toThrow(QueryFailedError);
    await expect(orders().save(newAndFailing(space, existing)[1], { transaction: false })).rejects.toThrow(QueryFailedError);

    expect(logs.errors).toEqual([expect.stringContaining('A save() of Order outside a transaction failed after writing some of its rows')]);
  });

  it('records an insert with orIgnore() or orUpdate() only for the rows it left in the state given', async () => {
    const space = freshSpace();
    await listen(space, 'Parcel');
    await dataSource.getRepository(Parcel).save({ code: `kept-${space}`, shop: space, state: ParcelState.DELIVERED });
    const insert = (code: string, state: ParcelState) =>
      dataSource.createQueryBuilder().insert().into(Parcel).values({ code, shop: space, state, note: 'n' });

    await insert(`kept-${space}`, ParcelState.PACKED).orIgnore().execute();
    await insert(`kept-${space}`, ParcelState.PACKED).orUpdate(['note'], ['code']).execute();
    await insert(`new-${space}`, ParcelState.PACKED).orIgnore().execute();
    await insert(`kept-${space}`, ParcelState.IN_TRANSIT).orUpdate(['state', 'note'], ['code']).execute();

    expect(await recorded(space)).toEqual([`kept-${space}:DELIVERED`, `new-${space}:PACKED`, `kept-${space}:IN_TRANSIT`]);
  });

  it('records nothing for an insert with a generated key that orIgnore() skipped for a unique value', async () => {
    const space = freshSpace();
    await listen(space, 'Shipment');
    const done = await dataSource.getRepository(Shipment).save({ ref: `r-${space}`, tenantId: space, state: 'DONE' });
    // On SQLite the last inserted rowid is now an order's, which TypeORM reports for the skipped row.
    await orders().save({ tenantId: freshSpace(), state: OrderState.PENDING });

    await dataSource
      .createQueryBuilder()
      .insert()
      .into(Shipment)
      .values({ ref: `r-${space}`, tenantId: space, state: 'NEW' })
      .orIgnore()
      .execute();

    expect(await recorded(space)).toEqual([`${done.id}:DONE`]);
  });
});
