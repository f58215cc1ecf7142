import type { DataSource, EntityManager, QueryRunner } from 'typeorm';

/** Tail of the queue of transactions per SQLite DataSource. */
const sqliteQueues = new WeakMap<DataSource, Promise<unknown>>();

/**
 * Runs `work` in a transaction. SQLite has one connection, on which TypeORM cannot run two
 * transactions at once, so there the module's transactions take turns, and each waits until the
 * host's own transaction on that connection (if any) has ended.
 */
export function inTransaction<T>(dataSource: DataSource, work: (manager: EntityManager) => Promise<T>): Promise<T> {
  if (isMysqlFamily(dataSource)) {
    // InnoDB's default REPEATABLE READ puts gap locks on the ranges claims scan, which then deadlock
    // with the host's inserts of new deliveries; READ COMMITTED takes none, as PostgreSQL's default.
    return dataSource.transaction('READ COMMITTED', work);
  }
  if (!isSqlite(dataSource)) {
    return dataSource.transaction(work);
  }
  const previous = sqliteQueues.get(dataSource) ?? Promise.resolve();
  const start = () => whenConnectionIdle(dataSource).then(() => dataSource.transaction(work));
  const run = previous.then(start, start);
  sqliteQueues.set(
    dataSource,
    run.catch(() => undefined),
  );
  return run;
}

function isMysqlFamily(dataSource: DataSource): boolean {
  const type: string = dataSource.options.type;
  return type === 'mysql' || type === 'mariadb';
}

export function isSqlite(dataSource: DataSource): boolean {
  const type: string = dataSource.options.type;
  return type === 'better-sqlite3' || type === 'sqlite';
}

const IDLE_POLL_MS = 2;

/** Resolves once the single SQLite connection is outside any transaction. */
async function whenConnectionIdle(dataSource: DataSource): Promise<void> {
  const shared = (dataSource.driver as { queryRunner?: QueryRunner }).queryRunner;
  while (shared?.isTransactionActive) await new Promise((resolve) => setTimeout(resolve, IDLE_POLL_MS));
}
