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
  while (typeormTransactionOpen(dataSource)) await pause();
}

/** Whether TypeORM's one query runner on SQLite is in a transaction, the host's or the module's. */
function typeormTransactionOpen(dataSource: DataSource): boolean {
  return (dataSource.driver as { queryRunner?: QueryRunner }).queryRunner?.isTransactionActive === true;
}

function pause(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, IDLE_POLL_MS));
}

/** better-sqlite3's own connection object behind a DataSource (another driver's, or none, elsewhere). */
function driverConnection(dataSource: DataSource): Partial<SqliteConnection> | undefined {
  return (dataSource.driver as { databaseConnection?: Partial<SqliteConnection> }).databaseConnection;
}

interface SqliteStatement {
  readonly reader: boolean;
  all(...parameters: unknown[]): unknown[];
  run(...parameters: unknown[]): unknown;
}

interface SqliteConnection {
  readonly inTransaction?: boolean;
  exec(sql: string): unknown;
  prepare(sql: string): SqliteStatement;
  transaction<T>(work: () => T): () => T;
}

const MAX_PREPARED_STATEMENTS = 100;

/** Statements (`?` placeholders) run on better-sqlite3's connection itself, prepared once per text. */
export class SynchronousSqlite {
  private readonly prepared = new Map<string, SqliteStatement>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly connection: SqliteConnection,
  ) {}

  /** The rows a statement returns; [] for one that returns none. */
  query(sql: string, parameters: readonly unknown[]): unknown[] {
    const statement = this.statement(sql);
    const values = parameters.map((value) => (typeof value === 'boolean' ? Number(value) : value));
    if (statement.reader) return statement.all(...values);
    statement.run(...values);
    return [];
  }

  /**
   * Runs `work` between BEGIN and COMMIT within one turn of the event loop, once no transaction is
   * open on the connection. TypeORM shares one query runner on SQLite: a save() of the host that
   * began while a transaction of the module stayed open across turns ran inside it, committed with
   * it and was not rolled back on its own. Within one turn no save() can begin.
   */
  async transaction<T>(work: () => T): Promise<T> {
    // Checked again in the turn that runs the work: whenConnectionIdle() would resolve a turn later.
    while (typeormTransactionOpen(this.dataSource) || this.connection.inTransaction) await pause();
    return this.connection.transaction(work)();
  }

  private statement(sql: string): SqliteStatement {
    let statement = this.prepared.get(sql);
    if (!statement) {
      statement = this.connection.prepare(sql);
      this.prepared.set(sql, statement);
      // A batch that reschedules retries has a text per number of them: keep the latest texts only.
      if (this.prepared.size > MAX_PREPARED_STATEMENTS) this.prepared.delete(this.prepared.keys().next().value!);
    }
    return statement;
  }
}

/** better-sqlite3's connection, which runs statements synchronously; null on other drivers. */
export function synchronousSqlite(dataSource: DataSource): SynchronousSqlite | null {
  if (dataSource.options.type !== 'better-sqlite3') return null;
  const connection = driverConnection(dataSource) as SqliteConnection | undefined;
  return connection ? new SynchronousSqlite(dataSource, connection) : null;
}

/**
 * Called as TypeORM begins to roll back a transaction on better-sqlite3. Without a statement journal
 * (a statement that writes a single row, or one written `OR FAIL`), an error such as SQLITE_FULL or
 * SQLITE_IOERR makes SQLite roll back the whole transaction itself. TypeORM does not see it: its
 * ROLLBACK then fails, and its one query runner stays "in a transaction" for good, so that later
 * saves run as savepoints outside any transaction and the module's own transactions wait forever.
 * Opens the levels TypeORM is about to roll back again, empty, so that its rollback succeeds and
 * its state matches the connection's. Returns whether it had to.
 */
export function reopenTransactionEndedBySqlite(queryRunner: QueryRunner): boolean {
  const connection = driverConnection(queryRunner.connection);
  if (!queryRunner.isTransactionActive || connection?.inTransaction !== false) return false;
  const depth = (queryRunner as unknown as { transactionDepth?: number }).transactionDepth ?? 1;
  connection.exec!('BEGIN');
  for (let level = 1; level < depth; level++) connection.exec!(`SAVEPOINT typeorm_${level}`);
  return true;
}
