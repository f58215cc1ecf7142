import { DataSource } from 'typeorm';
import { WEBHOOK_ENTITIES, WebhookConfigurationError, webhookMigrationsFor } from '../../lib/index.js';
import { connectionOptions, selectedDatabases } from '../src/databases.js';

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

  it('keeps event ids increasing through the latest migration, also past events already removed', async () => {
    const quote = (name: string) => dataSource.driver.escape(name);
    const insertEvent = () =>
      dataSource.query(
        `INSERT INTO webhook_event (${['linkedSpaceId', 'entityName', 'listenerEntityId', 'entityId', 'state'].map(quote).join(', ')})` +
          ` VALUES (1, 'Order', 1001, '1', 'PAID')`,
      );
    const lastEventId = async () => Number((await dataSource.query(`SELECT MAX(id) AS id FROM webhook_event`))[0].id);
    await dataSource.runMigrations({ transaction: 'each' });
    await dataSource.undoLastMigration({ transaction: 'each' });
    // Three events, the two newest then removed as retention would.
    for (let i = 0; i < 3; i++) await insertEvent();
    const kept = (await lastEventId()) - 2;
    await dataSource.query(`DELETE FROM webhook_event WHERE id > ${kept}`);

    await dataSource.runMigrations({ transaction: 'each' });
    await insertEvent();
    expect(await lastEventId()).toBe(kept + 3);
    await dataSource.dropDatabase();
  });
});

describe('webhookMigrationsFor', () => {
  it('names the supported database types when given another', () => {
    expect(() => webhookMigrationsFor('oracle')).toThrow(WebhookConfigurationError);
    expect(() => webhookMigrationsFor('oracle')).toThrow(/postgres, mysql, mariadb, better-sqlite3, sqlite/);
  });
});
