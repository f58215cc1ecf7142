import { Injectable } from '@nestjs/common';
import type { QueryRunner } from 'typeorm';

const INSERT = /^\s*INSERT\b/i;
/** How TypeORM spells `orIgnore()` and `orUpdate()` on PostgreSQL, MySQL/MariaDB and SQLite. */
const CONFLICT_CLAUSE = /^\s*INSERT\s+(?:OR\s+\w+\s+|IGNORE\s+)|\bON\s+CONFLICT\b|\bON\s+DUPLICATE\s+KEY\s+UPDATE\b/i;

/**
 * Tells whether the last INSERT of a query runner had a conflict clause (`orIgnore()`, `orUpdate()`,
 * `upsert()`): TypeORM then reports every row it was given, whether the database inserted, updated
 * or skipped it, and may report the generated key of one row for another.
 */
@Injectable()
export class StatementWatch {
  private readonly lastInsert = new WeakMap<QueryRunner, string>();

  statementAnswered(queryRunner: QueryRunner, query: string, succeeded: boolean): void {
    if (succeeded && INSERT.test(query)) this.lastInsert.set(queryRunner, query);
  }

  /** Whether the last INSERT through the query runner may have left rows it was given unwritten or unchanged. */
  lastInsertMayHaveSkippedRows(queryRunner: QueryRunner | undefined): boolean {
    const query = queryRunner && this.lastInsert.get(queryRunner);
    return query !== undefined && CONFLICT_CLAUSE.test(query);
  }
}
