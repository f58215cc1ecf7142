import { QueryFailedError, type DataSource, type QueryRunner } from 'typeorm';

/** The part of a `pg` client used here. */
export interface PostgresConnection {
  query(config: { name: string; text: string; values: unknown[] }): Promise<unknown>;
  query(text: string): Promise<PostgresResult | PostgresResult[]>;
}

export interface PostgresResult {
  rows: Record<string, unknown>[];
}

/** The part of a `mysql2` (or `mysql`) connection used here. */
interface MysqlConnection {
  query(sql: string, values: unknown[], callback: (error: Error | null, result: unknown) => void): void;
}

/** What MySQL answers to a write. */
export interface MysqlWriteResult {
  insertId?: number;
  affectedRows?: number;
}

/**
 * Runs `run` on the driver's connection of the query runner (so inside its transaction, if any),
 * logged and with its errors wrapped as TypeORM does for its own queries. `beforeSending` runs
 * right before the statement is handed to the connection, in the same turn, and may stop it by
 * throwing: TypeORM's own path first awaits its BeforeQuery subscribers.
 */
export async function onDriverConnection<C, T>(
  dataSource: DataSource,
  queryRunner: QueryRunner,
  text: string,
  values: unknown[],
  run: (connection: C) => Promise<T>,
  beforeSending?: () => void,
): Promise<T> {
  const { logger } = dataSource;
  const connection: C = await queryRunner.connect();
  beforeSending?.();
  logger.logQuery(text, values, queryRunner);
  try {
    return await run(connection);
  } catch (error) {
    throw failedQuery(dataSource, queryRunner, text, values, error);
  }
}

/** A driver's error for a statement, logged and wrapped as TypeORM does for its own queries. */
function failedQuery(dataSource: DataSource, queryRunner: QueryRunner, text: string, values: unknown[], error: unknown): QueryFailedError {
  dataSource.logger.logQueryError(error as Error, text, values, queryRunner);
  return new QueryFailedError(text, values, error as Error);
}

/**
 * Sends statements without bound values as one query of PostgreSQL's simple protocol: one round
 * trip, and one implicit transaction around them all, so that `set_config(…, true)` in one holds for
 * the next. Returns the rows of the last statement.
 */
export async function lastRowsOfOneTransaction(dataSource: DataSource, statements: string[]): Promise<Record<string, unknown>[]> {
  const queryRunner = dataSource.createQueryRunner();
  try {
    const text = statements.join('; ');
    const results = await onDriverConnection(dataSource, queryRunner, text, [], (connection: PostgresConnection) => connection.query(text));
    return (Array.isArray(results) ? results[results.length - 1] : results).rows;
  } finally {
    await queryRunner.release();
  }
}

/** Runs one statement on the MySQL or MariaDB connection of the query runner, as `onDriverConnection` does. */
export function onMysqlConnection(
  dataSource: DataSource,
  queryRunner: QueryRunner,
  sql: string,
  values: unknown[],
  beforeSending: () => void,
): Promise<unknown> {
  return onDriverConnection(
    dataSource,
    queryRunner,
    sql,
    values,
    (connection: MysqlConnection) => sendToMysql(connection, sql, values),
    beforeSending,
  );
}

/**
 * Runs `statements` on the MySQL or MariaDB connection of a query runner, logged as TypeORM logs its
 * own queries, all handed to the connection in one turn, right after `beforeSending`. The connection
 * runs them in that order: nothing else sent on it, by another subscriber of the same write or by
 * whoever the pool gives it to next, can fall between them. A statement that fails does not stop the
 * next ones, which are to be written so that they then do nothing. Rejects, once all have run, with
 * the first failure as TypeORM's `QueryFailedError`.
 */
export async function onMysqlConnectionInOneTurn(
  dataSource: DataSource,
  queryRunner: QueryRunner,
  statements: [sql: string, values: unknown[]][],
  beforeSending: () => void,
): Promise<void> {
  const { logger } = dataSource;
  const connection: MysqlConnection = await queryRunner.connect();
  beforeSending();
  const outcomes = await Promise.allSettled(
    statements.map(([sql, values]) => {
      logger.logQuery(sql, values, queryRunner);
      return sendToMysql(connection, sql, values);
    }),
  );
  const failed = outcomes.findIndex((outcome) => outcome.status === 'rejected');
  if (failed >= 0) throw failedQuery(dataSource, queryRunner, ...statements[failed], (outcomes[failed] as PromiseRejectedResult).reason);
}

function sendToMysql(connection: MysqlConnection, sql: string, values: unknown[]): Promise<unknown> {
  return new Promise((resolve, reject) => connection.query(sql, values, (error, result) => (error ? reject(error) : resolve(result))));
}
