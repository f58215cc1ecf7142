import type { InsertQueryBuilder, ObjectLiteral } from 'typeorm';
import { isSqlite } from './transaction.js';

/**
 * Runs a single-row insert and returns the generated id in one statement on every database
 * (TypeORM's own entity update would add a SELECT on MySQL to read column defaults back).
 */
export async function insertReturningId<T extends ObjectLiteral>(insert: InsertQueryBuilder<T>): Promise<number> {
  const dataSource = insert.connection;
  const isPostgres = dataSource.options.type === 'postgres';
  const query = insert.updateEntity(false).callListeners(false);
  if (isPostgres) query.returning(['id']);
  const { raw } = await query.execute();
  if (isPostgres) return Number((raw as { id: string | number }[])[0].id);
  if (isSqlite(dataSource)) return Number(raw);
  return Number((raw as { insertId: number | string }).insertId);
}
