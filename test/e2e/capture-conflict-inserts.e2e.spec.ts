import { Column, Entity, PrimaryColumn, PrimaryGeneratedColumn, type DataSource, type EntityTarget, type ObjectLiteral } from 'typeorm';
import { WebhookEntity, WebhookEvent, WebhookListenerService, WebhookSpace, WebhookState } from '../../lib/index.js';
import { describeOnlyOn, selectedDatabases } from '../src/databases.js';
import { LogCollector } from '../src/log-collector.js';
import { Order, OrderState, Parcel, ParcelState, Shipment } from '../src/order.entity.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, HOST_ENTITIES, type TestApp } from '../src/test-app.js';

/** A webhook entity with a key TypeORM generates itself (a uuid) and a unique column upserts go by. */
@Entity('test_gadget')
@WebhookEntity({ name: 'Gadget', states: ['A', 'B'] })
class Gadget {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  @Column({ type: 'varchar', length: 30, unique: true })
  sku: string;

  @Column({ type: 'varchar', length: 30, unique: true, nullable: true })
  ean?: string | null;

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

/**
 * TypeORM reports every row given to an insert with a conflict clause, whether the database inserted,
 * updated or skipped it, and may report the generated key of one row for another.
 */
describe.each(selectedDatabases())('inserts with a conflict clause, on %s', (database) => {
  let testApp: TestApp;
  let dataSource: DataSource;

  beforeAll(async () => {
    testApp = await createTestApp(database, { hostEntities: [...HOST_ENTITIES, Gadget, Labelled] });
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

  it('records an upsert() into a soft-deleted row that changed its state', async () => {
    const space = freshSpace();
    await listen(space, 'Parcel');
    const parcels = dataSource.getRepository(Parcel);
    const parcel = await parcels.save({ code: `gone-${space}`, shop: space, state: ParcelState.PACKED });
    await parcels.softRemove(parcel);

    await parcels.upsert({ code: `gone-${space}`, shop: space, state: ParcelState.IN_TRANSIT }, ['code']);

    expect(await recorded(space)).toEqual([`gone-${space}:PACKED`, `gone-${space}:IN_TRANSIT`]);
  });

  it('records nothing for a row orIgnore() skipped while other requests insert beside it', async () => {
    const space = freshSpace();
    await listen(space, 'Parcel');
    await dataSource.getRepository(Parcel).save({ code: `kept-${space}`, shop: space, state: ParcelState.DELIVERED });

    for (let round = 0; round < 5; round++) {
      await Promise.all([
        dataSource
          .createQueryBuilder()
          .insert()
          .into(Parcel)
          .values({ code: `kept-${space}`, shop: space, state: ParcelState.PACKED })
          .orIgnore()
          .execute(),
        dataSource.getRepository(Order).save({ tenantId: freshSpace(), state: OrderState.PENDING }),
      ]);
    }

    expect(await recorded(space)).toEqual([`kept-${space}:DELIVERED`]);
  });

  it('records an orUpdate() by a generated key given with the row under that key', async () => {
    const space = freshSpace();
    await listen(space, 'Gadget');
    const gadget = await dataSource.getRepository(Gadget).save({ sku: `s-${space}`, tenantId: space, state: 'A' });
    // Another row since, so that a key reported from the last insert would be that one's.
    await dataSource.getRepository(Gadget).save({ sku: `o-${space}`, tenantId: freshSpace(), state: 'A' });

    await dataSource
      .createQueryBuilder()
      .insert()
      .into(Gadget)
      .values({ id: gadget.id, sku: `n-${space}`, tenantId: space, state: 'B' })
      .orUpdate(['state'], ['id'])
      .execute();

    expect(await dataSource.getRepository(Gadget).findOneByOrFail({ id: gadget.id })).toMatchObject({ state: 'B' });
    expect(await recorded(space)).toEqual([`${gadget.id}:A`, `${gadget.id}:B`]);
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

  it.each([
    {
      kind: 'with a unique column',
      entity: 'Gadget',
      target: Gadget as EntityTarget<ObjectLiteral>,
      values: (space: number) => ({
        id: `00000000-0000-4000-8000-${String(space).padStart(12, '0')}`,
        sku: `g-${space}`,
        tenantId: space,
        state: 'A',
      }),
    },
    {
      kind: 'without a unique column',
      entity: 'Order',
      target: Order as EntityTarget<ObjectLiteral>,
      values: (space: number) => ({ id: 800_000 + (space % 100_000), tenantId: space, state: OrderState.PENDING }),
    },
  ])('records an object $kind inserted again after remove(), under its new key', async ({ entity, target, values }) => {
    const space = freshSpace();
    await listen(space, entity);
    const repository = dataSource.getRepository(target);
    const object = repository.create(values(space));
    await repository.save(object);
    const given = object.id;
    await repository.remove(object);

    await repository.save(object);

    expect(object.id).not.toBe(given);
    expect(await recorded(space)).toEqual([`${given}:${values(space).state}`, `${object.id}:${values(space).state}`]);
  });

  it('writes and records a row whose generated key is given as raw SQL', async () => {
    const space = freshSpace();
    await listen(space, 'Shipment');
    const id = 900_000 + (space % 100_000);

    await dataSource.getRepository(Shipment).insert({ id: () => String(id), ref: `raw-${space}`, tenantId: space, state: 'NEW' });

    // PostgreSQL's serial column takes its own value instead: the event names the row as stored.
    const stored = await dataSource.getRepository(Shipment).findOneByOrFail({ ref: `raw-${space}` });
    expect(await recorded(space)).toEqual([`${stored.id}:NEW`]);
  });
});

describeOnlyOn('postgres')('an insert with a conflict clause whose unique values name different rows, on PostgreSQL', () => {
  it('is not recorded under either, and says so', async () => {
    const logs = new LogCollector();
    const testApp = await createTestApp('postgres', { hostEntities: [...HOST_ENTITIES, Gadget, Labelled], logger: logs });
    try {
      const space = freshSpace();
      await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Gadget', url: `https://${space}.example.com/hook` });
      const gadgets = testApp.dataSource.getRepository(Gadget);
      const first = await gadgets.save({ sku: `s1-${space}`, ean: `e1-${space}`, tenantId: space, state: 'A' });
      const second = await gadgets.save({ sku: `s2-${space}`, ean: `e2-${space}`, tenantId: space, state: 'B' });

      // Updates the first row, found by its ean, into B; the sku given is the second row's, already in B.
      await testApp.dataSource
        .createQueryBuilder()
        .insert()
        .into(Gadget)
        .values({ sku: `s2-${space}`, ean: `e1-${space}`, tenantId: space, state: 'B' })
        .orUpdate(['state'], ['ean'])
        .execute();

      expect(await gadgets.findOneByOrFail({ id: first.id })).toMatchObject({ state: 'B' });
      const events = await testApp.dataSource.getRepository(WebhookEvent).find({ where: { linkedSpaceId: space }, order: { id: 'ASC' } });
      expect(events.map((event) => `${event.entityId}:${event.state}`)).toEqual([`${first.id}:A`, `${second.id}:B`]);
      expect(logs.warnings).toContainEqual(
        expect.stringContaining('An insert of Gadget with a conflict clause matched rows by different unique constraints'),
      );
    } finally {
      await testApp.close();
    }
  });
});
