import { createHash } from 'node:crypto';
import { QueryFailedError, type DataSource, type EntityManager, type EntityTarget, type ObjectLiteral, type QueryRunner } from 'typeorm';
import { setNewest } from '../caching/bounded-map.js';
import { WebhookConnectionBusyError } from '../errors/webhook.errors.js';
import { onMysqlConnection, type MysqlWriteResult } from './driver-query.js';

/** Tail of the queue of transactions per SQLite DataSource. */
const sqliteQueues = new WeakMap<DataSource, Promise<unknown>>();

/**
 * Runs `work` in a transaction. SQLite has one connection, on which TypeORM cannot run two
 * transactions at once, so there the module's transactions take turns, and each waits until the
 * host's own transaction on that connection (if any) has ended.
 */
export function inTransaction<T>(dataSource: DataSource, work: (manager: EntityManager) => Promise<T>): Promise<T> {
  if (!isSqlite(dataSource)) {
    // READ COMMITTED whatever the server's default: each statement sees what others committed before
    // it, which the module's locking reads rely on. InnoDB's default REPEATABLE READ also puts gap
    // locks on the ranges claims scan, which then deadlock with the host's inserts of new deliveries.
    return dataSource.transaction('READ COMMITTED', work);
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

/** How long MySQL and MariaDB wait for a lock of `inTransactionUnder()`, as InnoDB waits for a row lock by default. */
const NAMED_LOCK_WAIT_S = 50;

/**
 * Runs `work` in a transaction once no other transaction of any instance holds the lock named `name`,
 * and holds it until this one has ended: for work that must see what another did about the same thing
 * before it, where there is no row to lock yet. PostgreSQL: an advisory transaction lock. MySQL and
 * MariaDB: a named lock of the connection, released after the commit or rollback. SQLite runs one
 * writing transaction at a time already.
 */
export async function inTransactionUnder<T>(
  dataSource: DataSource,
  name: string,
  work: (manager: EntityManager) => Promise<T>,
): Promise<T> {
  const digest = createHash('sha256').update(`nestjs-webhook-listener:${name}`).digest();
  if (dataSource.options.type === 'postgres') {
    return inTransaction(dataSource, async (manager) => {
      await manager.query('SELECT pg_advisory_xact_lock($1)', [digest.readBigInt64BE(0).toString()]);
      return work(manager);
    });
  }
  if (!isMysqlFamily(dataSource)) return inTransaction(dataSource, work);
  // MySQL's lock names hold at most 64 characters.
  const lockName = `webhook:${digest.toString('hex').slice(0, 48)}`;
  const queryRunner = dataSource.createQueryRunner();
  try {
    const [row] = await queryRunner.query('SELECT GET_LOCK(?, ?) AS locked', [lockName, NAMED_LOCK_WAIT_S]);
    if (Number(row.locked) !== 1) throw new WebhookConnectionBusyError(NAMED_LOCK_WAIT_S * 1000, `the lock on ${name}`);
    try {
      return await queryRunner.manager.transaction('READ COMMITTED', work);
    } finally {
      // The work's outcome stands: a lock that cannot be released goes with its connection anyway.
      await queryRunner.query('SELECT RELEASE_LOCK(?)', [lockName]).catch(() => undefined);
    }
  } finally {
    await queryRunner.release();
  }
}

/** MySQL or MariaDB (TypeORM's `mysql` and `mariadb` types). */
export function isMysqlFamily(dataSource: DataSource): boolean {
  const type: string = dataSource.options.type;
  return type === 'mysql' || type === 'mariadb';
}

export function isSqlite(dataSource: DataSource): boolean {
  const type: string = dataSource.options.type;
  return type === 'better-sqlite3' || type === 'sqlite';
}

const IDLE_POLL_MS = 2;
/**
 * How long the module's transactions wait for one of the application's on SQLite. A call made from
 * inside that transaction waits for itself: it fails after this, rather than never.
 */
export const SQLITE_IDLE_WAIT_MS = 10_000;

/** Resolves once the single SQLite connection is outside any transaction; rejects after SQLITE_IDLE_WAIT_MS. */
async function whenConnectionIdle(dataSource: DataSource): Promise<void> {
  const giveUpAt = Date.now() + SQLITE_IDLE_WAIT_MS;
  while (typeormTransactionOpen(dataSource)) {
    if (Date.now() >= giveUpAt) {
      throw new WebhookConnectionBusyError(
        SQLITE_IDLE_WAIT_MS,
        "SQLite's one connection to leave another transaction",
        'Inside a transaction of your own, pass its EntityManager to WebhookPublisher.publish(), and call the services after it has committed',
      );
    }
    await pause();
  }
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
  run(...parameters: unknown[]): { changes: number; lastInsertRowid: number | bigint };
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

  constructor(private readonly connection: SqliteConnection) {}

  runsOn(connection: SqliteConnection): boolean {
    return this.connection === connection;
  }

  /** Runs `steps` on the connection as it is: inside the transaction open on it, if any. */
  runSteps<T>(steps: TransactionSteps<T>): T {
    let step = steps.next();
    while (!step.done) step = steps.next(this.execute(...step.value));
    return step.value;
  }

  /** The rows a statement returns and the rows it changed; fails with TypeORM's `QueryFailedError`, as a statement through TypeORM would. */
  execute(sql: string, parameters: readonly unknown[]): StatementOutcome {
    const values = parameters.map((value) => (typeof value === 'boolean' ? Number(value) : value));
    try {
      const statement = this.statement(sql);
      if (statement.reader) return { rows: statement.all(...values) as Record<string, unknown>[], affected: 0 };
      const { changes, lastInsertRowid } = statement.run(...values);
      return { rows: [], affected: changes, insertId: Number(lastInsertRowid) };
    } catch (error) {
      throw new QueryFailedError(sql, values, error as Error);
    }
  }

  /**
   * Runs `work` between BEGIN and COMMIT within one turn of the event loop, once no transaction is
   * open on the connection. TypeORM shares one query runner on SQLite: a save() of the host that
   * began while a transaction of the module stayed open across turns ran inside it, committed with
   * it and was not rolled back on its own. Within one turn no save() can begin.
   *
   * It waits for SQLite's own state, not TypeORM's: TypeORM counts a transaction as open from
   * before its BEGIN has run (a transaction of one turn is over by then) and, after SQLite ended one
   * by itself, until TypeORM's rollback, which may wait for the capture of a write that ran in it.
   */
  async transaction<T>(work: () => T): Promise<T> {
    // Checked again in the turn that runs the work: whenConnectionIdle() would resolve a turn later.
    while (this.connection.inTransaction) await pause();
    try {
      return this.connection.transaction(work)();
    } catch (error) {
      // The statements of `work` fail as QueryFailedError already; this is BEGIN, COMMIT or ROLLBACK.
      throw (error as Error).name === 'SqliteError' ? new QueryFailedError('BEGIN … COMMIT', [], error as Error) : error;
    }
  }

  private statement(sql: string): SqliteStatement {
    // Set anew when used, so that the least recently used text goes first: texts vary with the number
    // of retries a batch reschedules, or of rows a job removes, and only the latest are kept.
    const statement = this.prepared.get(sql) ?? this.connection.prepare(sql);
    setNewest(this.prepared, sql, statement, MAX_PREPARED_STATEMENTS);
    return statement;
  }
}

const synchronousConnections = new WeakMap<DataSource, SynchronousSqlite>();

/**
 * better-sqlite3's connection, which runs statements synchronously (one per DataSource and
 * connection: a DataSource destroyed and initialized again has a new one); null on other drivers.
 */
export function synchronousSqlite(dataSource: DataSource): SynchronousSqlite | null {
  if (dataSource.options.type !== 'better-sqlite3') return null;
  const connection = driverConnection(dataSource) as SqliteConnection | undefined;
  if (!connection) return null;
  let synchronous = synchronousConnections.get(dataSource);
  if (!synchronous?.runsOn(connection)) {
    synchronous = new SynchronousSqlite(connection);
    synchronousConnections.set(dataSource, synchronous);
  }
  return synchronous;
}

/** A statement as TypeORM's query builders give it (`getQueryAndParameters()`): the driver's placeholders and values. */
export type DriverStatement = [sql: string, parameters: unknown[]];

/** An UPDATE built by TypeORM's query builder, for `writeAll()` or transaction steps. */
export function updateStatement(
  dataSource: DataSource,
  target: EntityTarget<ObjectLiteral>,
  values: ObjectLiteral,
  where: ObjectLiteral,
): DriverStatement {
  return dataSource
    .createQueryBuilder()
    .update(target)
    .set(withUpdateDate(dataSource, target, values))
    .where(where)
    .getQueryAndParameters();
}

/**
 * `values` with the entity's update date, if it has one, set by the database's clock as TypeORM's
 * `save()` sets it: its query builder's UPDATE writes CURRENT_TIMESTAMP, which MySQL and MariaDB
 * give in whole seconds, so that a change could be dated before the row's creation.
 */
export function withUpdateDate(dataSource: DataSource, target: EntityTarget<ObjectLiteral>, values: ObjectLiteral): ObjectLiteral {
  const column = dataSource.getMetadata(target).updateDateColumn;
  if (!column || values[column.propertyName] !== undefined) return values;
  const now = dataSource.driver.mappedDataTypes.updateDateDefault;
  return { ...values, [column.propertyName]: () => now };
}

/** A DELETE built by TypeORM's query builder, for `writeAll()` or transaction steps. */
export function deleteStatement(dataSource: DataSource, target: EntityTarget<ObjectLiteral>, where: ObjectLiteral): DriverStatement {
  return dataSource.createQueryBuilder().delete().from(target).where(where).getQueryAndParameters();
}

/** What a statement gave back: its rows (none for a write), how many rows it changed, and the id an insert generated (not on PostgreSQL). */
export interface StatementOutcome {
  rows: Record<string, unknown>[];
  affected: number;
  insertId?: number;
}

/**
 * The statements of one transaction, as a generator that yields each statement and receives its
 * outcome, so that the same steps run synchronously on better-sqlite3 and with awaits elsewhere.
 */
export type TransactionSteps<T> = Generator<DriverStatement, T, StatementOutcome>;

/**
 * Runs `steps` as one transaction: on better-sqlite3 from BEGIN to COMMIT within one turn of the
 * event loop (see `SynchronousSqlite.transaction`), elsewhere through `inTransaction()`, or under the
 * lock `lockName` through `inTransactionUnder()`.
 */
export function runTransactionSteps<T>(dataSource: DataSource, steps: () => TransactionSteps<T>, lockName?: string): Promise<T> {
  const sqlite = synchronousSqlite(dataSource);
  if (sqlite) {
    return sqlite.transaction(() => sqlite.runSteps(steps()));
  }
  const work = (manager: EntityManager) => runStepsThrough(manager, steps());
  return lockName === undefined ? inTransaction(dataSource, work) : inTransactionUnder(dataSource, lockName, work);
}

/**
 * When a statement may be sent: `settled()` is awaited before each, and `check()`, right before it
 * is sent, may stop it by throwing: `GateClosedForNowError` to wait for `settled()` again.
 */
export interface StatementGate {
  settled(): Promise<void>;
  check(): void;
}

/** Thrown by a `StatementGate`'s check when the statement should wait for `settled()` again. */
export class GateClosedForNowError extends Error {}

/** Sends a statement through `send`, which calls `check` right before sending, past `gate`. */
export async function throughGate<T>(gate: StatementGate, send: (check: () => void) => Promise<T>): Promise<T> {
  for (;;) {
    await gate.settled();
    try {
      return await send(gate.check);
    } catch (error) {
      if (!(error instanceof GateClosedForNowError)) throw error;
    }
  }
}

/**
 * Runs `steps` through a manager, in whatever transaction it is in, each statement past `gate`; on
 * MySQL and MariaDB its check runs in the turn the statement is handed to the driver.
 */
export async function runStepsThrough<T>(manager: EntityManager, steps: TransactionSteps<T>, gate?: StatementGate): Promise<T> {
  const mysql = isMysqlFamily(manager.connection);
  let step = steps.next();
  while (!step.done) {
    const statement = step.value;
    const outcome = !gate
      ? await outcomeThrough(manager, statement)
      : await throughGate(gate, async (check) => {
          if (mysql) return mysqlOutcome(await onMysqlConnection(manager.connection, manager.queryRunner!, ...statement, check));
          check();
          return outcomeThrough(manager, statement);
        });
    step = steps.next(outcome);
  }
  return step.value;
}

function mysqlOutcome(result: unknown): StatementOutcome {
  if (Array.isArray(result)) return { rows: result as Record<string, unknown>[], affected: 0 };
  const { insertId, affectedRows } = result as MysqlWriteResult;
  return { rows: [], affected: affectedRows ?? 0, insertId };
}

/** Runs writes as one transaction; resolves to the rows each changed. */
export function writeAll(dataSource: DataSource, statements: DriverStatement[]): Promise<number[]> {
  return runTransactionSteps(dataSource, function* () {
    const affected: number[] = [];
    for (const statement of statements) affected.push((yield statement).affected);
    return affected;
  });
}

async function outcomeThrough(manager: EntityManager, [sql, parameters]: DriverStatement): Promise<StatementOutcome> {
  const result = await manager.queryRunner!.query(sql, parameters, true);
  // TypeORM's raw result of an insert: the row id on SQLite (a bigint with safe integers), the driver's packet with insertId on MySQL.
  const raw = result.raw as number | bigint | { insertId?: number } | undefined;
  const insertId = typeof raw === 'number' || typeof raw === 'bigint' ? Number(raw) : raw?.insertId;
  return { rows: result.records ?? [], affected: result.affected ?? 0, insertId };
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
  const depth = transactionDepth(queryRunner);
  connection.exec!('BEGIN');
  for (let level = 1; level < depth; level++) connection.exec!(`SAVEPOINT typeorm_${level}`);
  return true;
}

/** How many levels of transaction TypeORM has open on a query runner: 1 for a transaction without savepoints. */
export function transactionDepth(queryRunner: QueryRunner): number {
  return (queryRunner as unknown as { transactionDepth?: number }).transactionDepth ?? 1;
}

/** Whether SQLite itself has a transaction open on better-sqlite3's connection (TypeORM may think otherwise). */
export function sqliteConnectionInTransaction(dataSource: DataSource): boolean {
  return driverConnection(dataSource)?.inTransaction === true;
}
