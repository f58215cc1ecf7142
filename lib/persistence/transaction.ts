import type { DataSource, EntityManager } from 'typeorm';

/** Tail of the queue of transactions per SQLite DataSource. */
const sqliteQueues = new WeakMap<DataSource, Promise<unknown>>();

/**
 * Runs `work` in a transaction. SQLite has one connection, on which TypeORM cannot run two
 * transactions at once, so there the module's transactions take turns.
 */
export function inTransaction<T>(dataSource: DataSource, work: (manager: EntityManager) => Promise<T>): Promise<T> {
  if (!isSqlite(dataSource)) {
    return dataSource.transaction(work);
  }
  const previous = sqliteQueues.get(dataSource) ?? Promise.resolve();
  const run = previous.then(
    () => dataSource.transaction(work),
    () => dataSource.transaction(work),
  );
  sqliteQueues.set(
    dataSource,
    run.catch(() => undefined),
  );
  return run;
}

export function isSqlite(dataSource: DataSource): boolean {
  const type: string = dataSource.options.type;
  return type === 'better-sqlite3' || type === 'sqlite';
}
