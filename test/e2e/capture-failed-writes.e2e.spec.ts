import {
  Column,
  Entity,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  QueryFailedError,
  type DataSource,
  type EntitySubscriberInterface,
  type InsertEvent,
} from 'typeorm';
import {
  WebhookEntity,
  WebhookEvent,
  WebhookListenerService,
  WebhookSpace,
  WebhookState,
  WebhookTransactionEndedError,
} from '../../lib/index.js';
import { selectedDatabases } from '../src/databases.js';
import { LogCollector } from '../src/log-collector.js';
import { Order, OrderState, Parcel, ParcelState, Shipment } from '../src/order.entity.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, HOST_ENTITIES, type TestApp } from '../src/test-app.js';

/** Rows a subscriber of the application writes beside the module's entities. */
@Entity('test_audit_note')
class AuditNote {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ type: 'varchar', length: 50 })
  text: string;
}

/** A webhook entity with a key TypeORM generates itself (a uuid) and a unique column upserts go by. */
@Entity('test_gadget')
@WebhookEntity({ name: 'Gadget', states: ['A', 'B'] })
class Gadget {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  @Column({ type: 'varchar', length: 30, unique: true })
  sku: string;

  @WebhookSpace()
  @Column({ type: 'int' })
  tenantId: number;

  @WebhookState()
  @Column({ type: 'varchar', length: 20 })
  state: string;
}

/** A webhook entity with a key of its own and another unique column. */
@Entity('test_labelled')
@WebhookEntity({ name: 'Labelled', states: ['A', 'B'] })
class Labelled {
  @PrimaryColumn({ type: 'varchar', length: 30 })
  code: string;

  @Column({ type: 'varchar', length: 30, unique: true })
  label: string;

  @WebhookSpace()
  @Column({ type: 'int' })
  tenantId: number;

  @WebhookState()
  @Column({ type: 'varchar', length: 20 })
  state: string;
}

/** An application subscriber that writes an audit row before every Shipment is inserted. */
class ShipmentAudit implements EntitySubscriberInterface<Shipment> {
  listenTo() {
    return Shipment;
  }

  async beforeInsert(event: InsertEvent<Shipment>): Promise<void> {
    // Without hooks, as a raw statement would be.
    await event.manager
      .createQueryBuilder()
      .insert()
      .into(AuditNote)
      .values({ text: `before ${event.entity.ref}` })
      .callListeners(false)
      .execute();
  }
}

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
    testApp = await createTestApp(database, { logger: logs, hostEntities: [...HOST_ENTITIES, AuditNote, Gadget, Labelled] });
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

  it('commits after a save() refused before its first statement, whatever runs on the connection after it', async () => {
    const space = freshSpace();
    await listen(space, 'Order');
    const existing = await orders().save({ tenantId: space, state: OrderState.PENDING });
    const table = orders().metadata.tableName;
    const [tenantId, state] = ['tenantId', 'state'].map((name) => dataSource.driver.escape(name));
    const param = (index: number) => (database === 'postgres' ? `$${index}` : '?');

    await dataSource.transaction(async (manager) => {
      // A state longer than an event holds, which listeners match: refused before the row is written.
      const unstorable = { tenantId: space, state: 'S'.repeat(101) as OrderState };
      await expect(manager.save(Order, [unstorable, { tenantId: space, state: OrderState.CONFIRMED }])).rejects.toThrow('state');
      await manager.query(`UPDATE ${table} SET ${state} = ${param(1)} WHERE id = ${param(2)}`, [OrderState.SHIPPED, existing.id]);
      const duplicate = `INSERT INTO ${table} (id, ${tenantId}, ${state}) VALUES (${param(1)}, ${param(2)}, ${param(3)})`;
      await manager.query(duplicate, [existing.id, space, OrderState.PENDING]).catch(() => undefined);
    });

    expect(await committedOrders(space)).toEqual([`${existing.id}:${failedStatementAbortsTransaction ? 'PENDING' : 'SHIPPED'}`]);
  });

  it('commits after a caught duplicate-key save() whose application subscriber wrote a row of its own first', async () => {
    const space = freshSpace();
    await listen(space, 'Shipment');
    const audit = new ShipmentAudit();
    dataSource.subscribers.unshift(audit);
    try {
      const first = await dataSource.getRepository(Shipment).save({ ref: `a-${space}`, tenantId: space, state: 'NEW' });
      logs.errors.length = 0;
      await dataSource.transaction(async (manager) => {
        await expect(manager.save(Shipment, { ref: `a-${space}`, tenantId: space, state: 'SENT' })).rejects.toThrow(QueryFailedError);
      });
      await expect(
        dataSource.getRepository(Shipment).save({ ref: `a-${space}`, tenantId: space, state: 'SENT' }, { transaction: false }),
      ).rejects.toThrow(QueryFailedError);

      expect(await recorded(space)).toEqual([`${first.id}:NEW`]);
      expect(logs.errors).toEqual([]);
    } finally {
      dataSource.subscribers.splice(dataSource.subscribers.indexOf(audit), 1);
    }
  });

  it('commits after a save() that failed part-way when no listener matches its rows', async () => {
    const space = freshSpace();
    await listen(space, 'Parcel');
    // Saved without the capture, so that the module has not read the space's Order listeners yet.
    const existing = await orders().save({ tenantId: space, state: OrderState.PENDING }, { listeners: false });

    await dataSource.transaction(async (manager) => {
      await manager.save(Order, newAndFailing(space, existing)).catch(() => undefined);
    });

    expect(await committedOrders(space)).toEqual(
      failedStatementAbortsTransaction ? [`${existing.id}:PENDING`] : [`${existing.id}:PENDING`, expect.stringMatching(/:CONFIRMED$/)],
    );
    expect(await recorded(space)).toEqual([]);
  });

  it.each([0, 10, 15, 30])(
    'refuses the commit also when another request saves rows of another entity meanwhile, %i turns later',
    async (turns) => {
      const space = freshSpace();
      await listen(space, 'Order');
      const existing = await orders().save({ tenantId: space, state: OrderState.PENDING });
      const later = async () => {
        for (let turn = 0; turn < turns; turn++) await Promise.resolve();
        await dataSource.getRepository(AuditNote).save({ text: `beside ${space}` });
      };
      const [committing] = await Promise.allSettled([
        dataSource.transaction(async (manager) => {
          await manager.save(Order, newAndFailing(space, existing)).catch(() => undefined);
        }),
        later(),
      ]);

      expect(committing.status).toBe(failedStatementAbortsTransaction ? 'fulfilled' : 'rejected');
      expect(await committedOrders(space)).toEqual([`${existing.id}:PENDING`]);
      expect(await recorded(space)).toEqual([`${existing.id}:PENDING`]);
    },
  );

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

  it('records an upsert() of an existing row with a uuid key under the key of that row', async () => {
    const space = freshSpace();
    await listen(space, 'Gadget');
    const gadgets = dataSource.getRepository(Gadget);
    const existing = await gadgets.save({ sku: `s-${space}`, tenantId: space, state: 'A' });

    await gadgets.upsert({ sku: `s-${space}`, tenantId: space, state: 'B' }, ['sku']);

    expect(await recorded(space)).toEqual([`${existing.id}:A`, `${existing.id}:B`]);
  });

  it('records the row an orIgnore() of several rows with a generated key inserted, and not the one it skipped', async () => {
    const space = freshSpace();
    await listen(space, 'Shipment');
    const shipments = dataSource.getRepository(Shipment);
    const done = await shipments.save({ ref: `m-${space}`, tenantId: space, state: 'DONE' });

    await shipments
      .createQueryBuilder()
      .insert()
      .values([
        { ref: `m-${space}`, tenantId: space, state: 'NEW' },
        { ref: `n-${space}`, tenantId: space, state: 'SENT' },
      ])
      .orIgnore()
      .execute();

    const inserted = await shipments.findOneByOrFail({ ref: `n-${space}` });
    expect(await recorded(space)).toEqual([`${done.id}:DONE`, `${inserted.id}:SENT`]);
  });

  it('records an orUpdate() by the key that changed the state, whatever another unique column was given', async () => {
    const space = freshSpace();
    await listen(space, 'Labelled');
    await dataSource.getRepository(Labelled).save({ code: `c-${space}`, label: `old-${space}`, tenantId: space, state: 'A' });

    await dataSource
      .createQueryBuilder()
      .insert()
      .into(Labelled)
      .values({ code: `c-${space}`, label: `new-${space}`, tenantId: space, state: 'B' })
      .orUpdate(['state'], ['code'])
      .execute();

    expect(await recorded(space)).toEqual([`c-${space}:A`, `c-${space}:B`]);
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
