import { DataSource, type DataSourceOptions } from 'typeorm';

export type TestDatabase = 'sqlite' | 'postgres' | 'mariadb';

const KNOWN: readonly TestDatabase[] = ['sqlite', 'postgres', 'mariadb'];

/**
 * The databases the DB suites run on: `WEBHOOK_TEST_DATABASES=sqlite,postgres,mariadb`.
 * Default SQLite only, so a machine without database servers passes `npm test`.
 */
export function selectedDatabases(): TestDatabase[] {
  const raw = process.env.WEBHOOK_TEST_DATABASES ?? 'sqlite';
  const names = raw
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!KNOWN.includes(name as TestDatabase))
      throw new Error(`WEBHOOK_TEST_DATABASES: unknown database "${name}" (known: ${KNOWN.join(', ')})`);
  }
  return names as TestDatabase[];
}

/** `describe` when `database` is among the selected ones, `describe.skip` otherwise: for suites that need that one server. */
export function describeOnlyOn(database: TestDatabase): jest.Describe {
  return selectedDatabases().includes(database) ? describe : describe.skip;
}

/** Connection settings of a test database; servers from PG_URL / MYSQL_URL or the local defaults. */
export function connectionOptions(database: TestDatabase): DataSourceOptions {
  switch (database) {
    case 'sqlite':
      return { type: 'better-sqlite3', database: ':memory:' };
    case 'postgres':
      return { type: 'postgres', url: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' };
    case 'mariadb':
      return { type: 'mariadb', url: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test' };
  }
}

/**
 * Drops every table of a server database, for a suite whose app creates its tables without dropping
 * what an earlier suite left (e.g. the same tables under another naming strategy).
 */
export async function emptyDatabase(database: TestDatabase): Promise<void> {
  const dataSource = new DataSource({ ...connectionOptions(database), dropSchema: true });
  await dataSource.initialize();
  await dataSource.destroy();
}

/** `describe.each` over `databases`; skipped when none is selected, since Jest refuses an empty table. */
export function describeEachOf(databases: TestDatabase[]) {
  return databases.length > 0 ? describe.each(databases) : describe.skip.each<TestDatabase>(['postgres']);
}
