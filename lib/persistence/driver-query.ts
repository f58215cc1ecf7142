import { QueryFailedError, type DataSource, type QueryRunner } from 'typeorm';

/** The part of a `pg` client used here. */
export interface PostgresConnection {
  query(config: { name: string; text: string; values: unknown[] }): Promise<unknown>;
  query(text: string): Promise<PostgresResult | PostgresResult[]>;
}

export interface PostgresResult {
  rows: Record<string, unknown>[];
}

/**
 * Runs `run` on the `pg` client of the query runner (so inside its transaction, if any), logged and
 * with its errors wrapped as TypeORM does for its own queries.
 */
export async function onPostgresConnection<T>(
  dataSource: DataSource,
  queryRunner: QueryRunner,
  text: string,
  values: unknown[],
  run: (connection: PostgresConnection) => Promise<T>,
): Promise<T> {
  const { logger } = dataSource;
  const connection: PostgresConnection = await queryRunner.connect();
  logger.logQuery(text, values, queryRunner);
  try {
    return await run(connection);
  } catch (error) {
    logger.logQueryError(error as Error, text, values, queryRunner);
    throw new QueryFailedError(text, values, error as Error);
  }
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
    const results = await onPostgresConnection(dataSource, queryRunner, text, [], (connection) => connection.query(text));
    return (Array.isArray(results) ? results[results.length - 1] : results).rows;
  } finally {
    await queryRunner.release();
  }
}
