import { Inject, Injectable, Logger } from '@nestjs/common';
import type { DataSource, QueryRunner } from 'typeorm';
import { WebhookTransactionEndedError } from '../errors/webhook.errors.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { transactionDepth } from '../persistence/transaction.js';

const INSERT = /^\s*INSERT\b/i;
/** How TypeORM spells `orIgnore()` and `orUpdate()` on PostgreSQL, MySQL/MariaDB and SQLite. */
const CONFLICT_CLAUSE = /^\s*INSERT\s+(?:OR\s+\w+\s+|IGNORE\s+)|\bON\s+CONFLICT\b|\bON\s+DUPLICATE\s+KEY\s+UPDATE\b/i;
const READ = /^\s*(?:SELECT|SHOW|PRAGMA|EXPLAIN)\b/i;

/** The rows of a write that TypeORM announced (their before-hooks ran) and has not reported yet. */
interface WriteUnderWay {
  /** The webhook entities among them that listeners may hear of. */
  entities: Set<string>;
  /** Rows that TypeORM writes concurrently (updates, soft removals, recoveries; not on PostgreSQL). */
  concurrentRows: number;
  statementsSent: number;
  /** Statements other than reads that succeeded. */
  statementsWritten: number;
  statementsUnanswered: number;
}

/** A write that failed after it had written part of its rows, at a transaction level still open. */
interface PartlyWritten {
  depth: number;
  entities: string[];
}

/**
 * Follows the statements TypeORM runs for the writes of webhook entities. TypeORM reports the rows
 * of a save() to subscribers only after all its statements succeeded: when one fails, the rows
 * written before it get no after-hook, hence no event. PostgreSQL then refuses to commit the
 * transaction; MySQL, MariaDB and SQLite would commit those rows, so their commit is refused here.
 * Also tells whether the last INSERT of a query runner had a conflict clause (`orIgnore()`,
 * `orUpdate()`, `upsert()`), after which TypeORM reports rows the database may have left unwritten.
 */
@Injectable()
export class StatementWatch {
  private readonly logger = new Logger('WebhookCapture');
  private readonly underWay = new WeakMap<QueryRunner, WriteUnderWay>();
  private readonly partlyWritten = new WeakMap<QueryRunner, PartlyWritten[]>();
  private readonly lastInsert = new WeakMap<QueryRunner, string>();
  /**
   * PostgreSQL aborts a transaction at its first failed statement, which can then only roll back;
   * and TypeORM writes the rows of a save() one after another there.
   */
  private readonly postgres: boolean;

  constructor(@Inject(WEBHOOK_DATA_SOURCE) dataSource: DataSource) {
    this.postgres = dataSource.options.type === 'postgres';
  }

  /** A before-hook of a row, of any entity: TypeORM announces all rows of a save() before its first statement. */
  rowAnnounced(queryRunner: QueryRunner, writtenConcurrently: boolean): void {
    let write = this.underWay.get(queryRunner);
    if (!write || write.statementsSent > 0) {
      write = { entities: new Set(), concurrentRows: 0, statementsSent: 0, statementsWritten: 0, statementsUnanswered: 0 };
      this.underWay.set(queryRunner, write);
    }
    if (writtenConcurrently && !this.postgres) write.concurrentRows++;
  }

  /** The row just announced is of a webhook entity that listeners may hear of. */
  listenersMayHear(queryRunner: QueryRunner, entityName: string): void {
    this.underWay.get(queryRunner)?.entities.add(entityName);
  }

  /** An after-hook: TypeORM reports the writes it announced, which the capture records. */
  writesReported(queryRunner: QueryRunner): void {
    this.underWay.delete(queryRunner);
  }

  statementSent(queryRunner: QueryRunner): void {
    const write = this.underWay.get(queryRunner);
    if (!write) return;
    write.statementsSent++;
    write.statementsUnanswered++;
  }

  statementAnswered(queryRunner: QueryRunner, query: string, succeeded: boolean): void {
    if (succeeded && INSERT.test(query)) this.lastInsert.set(queryRunner, query);
    const write = this.underWay.get(queryRunner);
    if (!write) return;
    write.statementsUnanswered = Math.max(0, write.statementsUnanswered - 1);
    if (succeeded) {
      if (!READ.test(query)) write.statementsWritten++;
      return;
    }
    this.underWay.delete(queryRunner);
    if (write.entities.size === 0) return;
    // Rows written concurrently may be written after the failed statement, or were sent beside it.
    const mayHaveWritten = write.statementsWritten > 0 || write.statementsUnanswered > 0 || write.concurrentRows > 1;
    if (mayHaveWritten) this.failedPartWay(queryRunner, [...write.entities]);
  }

  /** Whether the last INSERT through the query runner may have left rows it was given unwritten or unchanged. */
  lastInsertMayHaveSkippedRows(queryRunner: QueryRunner | undefined): boolean {
    const query = queryRunner && this.lastInsert.get(queryRunner);
    return query !== undefined && CONFLICT_CLAUSE.test(query);
  }

  /** Called as TypeORM begins a rollback: what failed at that level or above is undone with it. */
  rollbackBegins(queryRunner: QueryRunner): void {
    this.underWay.delete(queryRunner);
    const depth = transactionDepth(queryRunner);
    const kept = (this.partlyWritten.get(queryRunner) ?? []).filter((write) => write.depth < depth);
    if (kept.length > 0) this.partlyWritten.set(queryRunner, kept);
    else this.partlyWritten.delete(queryRunner);
  }

  /** The error a commit at the query runner's current level must fail with, if a write at that level failed part-way. */
  commitRefusal(queryRunner: QueryRunner): WebhookTransactionEndedError | null {
    const depth = transactionDepth(queryRunner);
    const failed = (this.partlyWritten.get(queryRunner) ?? []).filter((write) => write.depth >= depth);
    if (failed.length === 0) return null;
    const entities = [...new Set(failed.flatMap((write) => write.entities))].join(', ');
    return new WebhookTransactionEndedError(
      `A save() of ${entities} failed in this transaction after writing some of its rows, which TypeORM reports to no subscriber: ` +
        'their webhook events are missing, so the transaction is not committed. Roll it back, or make such a save() in a nested ' +
        'transaction, which rolls back by itself when the save() fails',
    );
  }

  private failedPartWay(queryRunner: QueryRunner, entities: string[]): void {
    if (!queryRunner.isTransactionActive) {
      this.logger.error(
        `A save() of ${entities.join(', ')} outside a transaction failed after writing some of its rows, which TypeORM reports to ` +
          'no subscriber: no webhook event was recorded for them. Make such writes in a transaction',
      );
      return;
    }
    if (this.postgres) return;
    const depth = transactionDepth(queryRunner);
    this.partlyWritten.set(queryRunner, [...(this.partlyWritten.get(queryRunner) ?? []), { depth, entities }]);
  }
}
