import { DataSource } from 'typeorm';
import { WEBHOOK_ENTITIES, WebhookConfigurationError, webhookMigrationsFor } from '../../lib/index.js';
import { connectionOptions, selectedDatabases } from '../src/databases.js';

/** Rows of the module's tables as the migrations leave them, for the tests of their ids and undoing. */
const row = {
  identity: (keyId: string) => ({
    linkedSpaceId: 1,
    name: 'shop',
    state: 'ACTIVE',
    version: 1,
    keyId,
    publicKey: 'public',
    privateKey: 'private',
    secret: 'secret',
  }),
  event: () => ({ linkedSpaceId: 1, entityName: 'Order', listenerEntityId: 1001, entityId: '1', state: 'PAID' }),
  delivery: (eventId: number, listenerId: number, urlId: number) => ({
    eventId,
    listenerId,
    urlId,
    linkedSpaceId: 1,
    state: 'SUCCEEDED',
    nextAttemptAt: 0,
  }),
  attempt: (deliveryId: number, listenerId: number) => ({
    deliveryId,
    linkedSpaceId: 1,
    listenerId,
    attemptNumber: 1,
    startedAt: 0,
    durationMs: 1,
    outcome: 'SUCCEEDED',
  }),
};

describe.each(selectedDatabases())('webhook migrations on %s', (database) => {
  let dataSource: DataSource;

  beforeAll(async () => {
    const options = connectionOptions(database);
    dataSource = new DataSource({ ...options, entities: [...WEBHOOK_ENTITIES], migrations: webhookMigrationsFor(options.type) } as never);
    await dataSource.initialize();
    await dataSource.dropDatabase();
  });
  afterAll(() => dataSource.destroy());

  it('build exactly the schema that synchronize would, and undo cleanly', async () => {
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    expect(applied.length).toBeGreaterThan(0);

    const pending = await dataSource.driver.createSchemaBuilder().log();
    expect(pending.upQueries.map((query) => query.query)).toEqual([]);

    const tables = async () =>
      (await dataSource.createQueryRunner().getTables(dataSource.entityMetadatas.map((metadata) => metadata.tableName))).map((t) =>
        t.name.split('.').pop(),
      );
    expect((await tables()).sort()).toEqual([
      'webhook_delivery',
      'webhook_delivery_attempt',
      'webhook_event',
      'webhook_identity',
      'webhook_listener',
      'webhook_retired_key',
      'webhook_url',
    ]);

    for (let i = 0; i < applied.length; i++) await dataSource.undoLastMigration({ transaction: 'each' });
    expect(await tables()).toEqual([]);
  });

  it("undo one by one with TypeORM's default options while rows refer to each other, and keep the rows of the tables they keep", async () => {
    await dataSource.runMigrations();
    const quote = (name: string) => dataSource.driver.escape(name);
    const insert = async (table: string, row: Record<string, string | number>) => {
      await dataSource.query(
        `INSERT INTO ${table} (${Object.keys(row).map(quote).join(', ')}) VALUES (${Object.values(row)
          .map((value) => (typeof value === 'number' ? String(value) : `'${value}'`))
          .join(', ')})`,
      );
      return Number((await dataSource.query(`SELECT MAX(id) AS id FROM ${table}`))[0].id);
    };
    const managed = { linkedSpaceId: 1, state: 'ACTIVE', version: 1 };
    const identityId = await insert('webhook_identity', row.identity('key-1'));
    const urlId = await insert('webhook_url', { ...managed, name: 'receiver', url: 'https://receiver.example/hook' });
    const listenerId = await insert('webhook_listener', {
      ...managed,
      name: 'orders',
      entity: 'Order',
      entityStates: '[]',
      urlId,
      identityId,
    });
    const eventId = await insert('webhook_event', row.event());
    const deliveryId = await insert('webhook_delivery', row.delivery(eventId, listenerId, urlId));
    await insert('webhook_delivery_attempt', row.attempt(deliveryId, listenerId));

    const tables = ['webhook_identity', 'webhook_url', 'webhook_listener', 'webhook_event', 'webhook_delivery', 'webhook_delivery_attempt'];
    const rowsPerTable = async () => {
      const queryRunner = dataSource.createQueryRunner();
      try {
        const present = (await queryRunner.getTables(tables)).map((table) => table.name.split('.').pop()!);
        const counts: Record<string, number> = {};
        for (const table of present.sort()) counts[table] = Number((await dataSource.query(`SELECT COUNT(*) AS n FROM ${table}`))[0].n);
        return counts;
      } finally {
        await queryRunner.release();
      }
    };
    for (let undone = 0; undone < dataSource.migrations.length; undone++) {
      const name = dataSource.migrations[dataSource.migrations.length - 1 - undone].name;
      await expect(dataSource.undoLastMigration().then(() => name)).resolves.toBe(name);
      const counts = await rowsPerTable();
      expect({ name, counts }).toEqual({ name, counts: Object.fromEntries(Object.keys(counts).map((table) => [table, 1])) });
    }
    expect(await rowsPerTable()).toEqual({});
  });

  // Many migration steps of DDL, slow on a busy disk.
  it('keeps event, delivery, attempt and identity ids increasing through the migrations, up and down, also past rows already removed', async () => {
    const quote = (name: string) => dataSource.driver.escape(name);
    const literal = (value: string | number) => (typeof value === 'number' ? String(value) : `'${value}'`);
    const insert = (table: string, row: Record<string, string | number>) =>
      dataSource.query(
        `INSERT INTO ${table} (${Object.keys(row).map(quote).join(', ')}) VALUES (${Object.values(row).map(literal).join(', ')})`,
      );
    const lastId = async (table: string) => Number((await dataSource.query(`SELECT MAX(id) AS id FROM ${table}`))[0].id);
    const migrate = () => dataSource.runMigrations({ transaction: 'each' });
    /** Undoes the applied migrations down to and with the one of that name (without its database's suffix). */
    const undoDownTo = async (name: string) => {
      const index = dataSource.migrations.findIndex((migration) => migration.name?.replace(/(Postgres|Mysql|Sqlite)\d+$/, '') === name);
      expect(index).toBeGreaterThanOrEqual(0);
      for (let applied = dataSource.migrations.length; applied > index; applied--)
        await dataSource.undoLastMigration({ transaction: 'each' });
    };

    await migrate();
    await insert('webhook_url', { linkedSpaceId: 1, name: 'receiver', state: 'ACTIVE', version: 1, url: 'https://receiver.example/hook' });
    const urlId = await lastId('webhook_url');
    await insert('webhook_listener', {
      linkedSpaceId: 1,
      name: 'orders',
      state: 'ACTIVE',
      version: 1,
      entity: 'Order',
      entityStates: '[]',
      urlId,
    });
    const listenerId = await lastId('webhook_listener');
    // Deliveries and attempts refer to the first event and delivery, which are never removed.
    const first: Record<string, number> = {};
    let keys = 0;
    const rows: Record<string, () => Record<string, string | number>> = {
      webhook_identity: () => row.identity(`key-${++keys}`),
      webhook_event: row.event,
      webhook_delivery: () => row.delivery(first.webhook_event, listenerId, urlId),
      webhook_delivery_attempt: () => row.attempt(first.webhook_delivery, listenerId),
    };
    const highestGiven: Record<string, number> = {};
    /** Three rows, the two newest then removed as retention would. */
    const addAndRemoveNewest = async (tables: string[]) => {
      for (const table of tables) {
        for (let i = 0; i < 3; i++) await insert(table, rows[table]());
        highestGiven[table] = await lastId(table);
        first[table] = highestGiven[table] - 2;
        await dataSource.query(`DELETE FROM ${table} WHERE id > ${first[table]}`);
      }
    };
    /** A new row takes the id after the highest ever given; it is then removed again, so that the next migrations meet a gap too. */
    const expectIdsToContinue = async (tables: string[]) => {
      for (const table of tables) {
        await insert(table, rows[table]());
        expect({ table, id: await lastId(table) }).toEqual({ table, id: highestGiven[table] + 1 });
        highestGiven[table]++;
        await dataSource.query(`DELETE FROM ${table} WHERE id = ${highestGiven[table]}`);
      }
    };
    const withoutAttempts = ['webhook_identity', 'webhook_event', 'webhook_delivery'];
    const all = [...withoutAttempts, 'webhook_delivery_attempt'];

    // On SQLite, WebhookDelivery and the migrations after it copy these tables into new ones.
    await undoDownTo('WebhookDelivery');
    await addAndRemoveNewest(withoutAttempts);
    await migrate();
    await expectIdsToContinue(withoutAttempts);
    await addAndRemoveNewest(['webhook_delivery_attempt']);

    await undoDownTo('WebhookHotPathForeignKeys');
    await expectIdsToContinue(all);
    await migrate();
    await expectIdsToContinue(all);
    await undoDownTo('WebhookDelivery');
    await expectIdsToContinue(withoutAttempts);
    // Undone, the migrations leave the other tables' foreign keys pointing at the tables they rebuilt.
    await insert('webhook_listener', {
      linkedSpaceId: 1,
      name: 'after',
      state: 'ACTIVE',
      version: 1,
      entity: 'Order',
      entityStates: '[]',
      urlId,
    });
    await dataSource.dropDatabase();
  }, 180_000);
});

describe('webhookMigrationsFor', () => {
  it('names the supported database types when given another', () => {
    expect(() => webhookMigrationsFor('oracle')).toThrow(WebhookConfigurationError);
    expect(() => webhookMigrationsFor('oracle')).toThrow(/postgres, mysql, mariadb, better-sqlite3, sqlite/);
  });
});
