import { Inject, Injectable, Logger } from '@nestjs/common';
import type { DataSource, EntityManager, ObjectLiteral, QueryRunner } from 'typeorm';
import { WebhookTransactionEndedError } from '../errors/webhook.errors.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { transactionDepth } from '../persistence/transaction.js';
import { ChangeRecorder, type EntityChange } from './change-recorder.service.js';

const INSERT = /^\s*INSERT\b/i;
/** How TypeORM spells `orIgnore()` and `orUpdate()` on PostgreSQL, MySQL/MariaDB and SQLite. */
const CONFLICT_CLAUSE = /^\s*INSERT\s+(?:OR\s+\w+\s+|IGNORE\s+)|\bON\s+CONFLICT\b|\bON\s+DUPLICATE\s+KEY\s+UPDATE\b/i;
/** The table a TypeORM INSERT, UPDATE or DELETE writes, quoted or not, with its schema if named. */
const WRITTEN_TABLE =
  /^\s*(?:INSERT\s+(?:OR\s+\w+\s+|IGNORE\s+)?INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)\s+((?:[`"][^`"]+[`"]|[^\s(`".]+)(?:\.(?:[`"][^`"]+[`"]|[^\s(`".]+))*)/i;
/** Writes left open (announced, never reported nor failed) kept per query runner at most. */
const MAX_OPEN_WRITES = 100;

/** The rows of one write that TypeORM announced (their before-hooks ran) and has not reported yet. */
interface WriteUnderWay {
  /** The tables of its rows, of every entity. */
  tables: Set<string>;
  /** The changes of webhook entities among them that listeners may hear of. */
  changes: EntityChange[];
  /** Rows that TypeORM writes concurrently (updates, soft removals, recoveries; not on PostgreSQL). */
  concurrentRows: number;
  /** Statements on its tables that succeeded, and that were sent and not answered yet. */
  statementsWritten: number;
  statementsUnanswered: number;
}

/** Changes of a write that failed after writing part of its rows, at a transaction level still open. */
interface PartlyWritten {
  depth: number;
  changes: EntityChange[];
}

/**
 * Follows the statements TypeORM runs for the writes of webhook entities. TypeORM reports the rows
 * of a save() to subscribers only after all its statements succeeded: when one fails, the rows
 * written before it get no after-hook, hence no event. PostgreSQL then refuses to commit the
 * transaction; MySQL, MariaDB and SQLite would commit those rows, so their commit is refused here
 * when listeners match one of them. A write's statements are told from others by the tables of its
 * rows: TypeORM announces all rows of a save() at once, before its first statement.
 * Also tells whether the last INSERT of a query runner had a conflict clause (`orIgnore()`,
 * `orUpdate()`, `upsert()`), after which TypeORM reports rows the database may have left unwritten.
 */
@Injectable()
export class StatementWatch {
  private readonly logger = new Logger('WebhookCapture');
  /** On SQLite, where TypeORM runs every transaction on one query runner, several at once. */
  private readonly openWrites = new WeakMap<QueryRunner, WriteUnderWay[]>();
  /** The write whose rows are being announced, until the turn of their before-hooks ends. */
  private readonly announcing = new WeakMap<QueryRunner, WriteUnderWay>();
  private readonly writeOfRow = new WeakMap<ObjectLiteral, WriteUnderWay>();
  private readonly partlyWritten = new WeakMap<QueryRunner, PartlyWritten[]>();
  private readonly lastInsert = new WeakMap<QueryRunner, string>();
  /**
   * PostgreSQL aborts a transaction at its first failed statement, which can then only roll back;
   * and TypeORM writes the rows of a save() one after another there.
   */
  private readonly postgres: boolean;

  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly recorder: ChangeRecorder,
  ) {
    this.postgres = dataSource.options.type === 'postgres';
  }

  /** A before-hook of a row, of any entity. */
  rowAnnounced(queryRunner: QueryRunner, row: ObjectLiteral, table: string, writtenConcurrently: boolean): void {
    let write = this.announcing.get(queryRunner);
    if (!write) {
      write = { tables: new Set(), changes: [], concurrentRows: 0, statementsWritten: 0, statementsUnanswered: 0 };
      const announced = write;
      this.announcing.set(queryRunner, announced);
      // TypeORM calls the before-hooks of all rows of a write in one go.
      queueMicrotask(() => this.announcing.get(queryRunner) === announced && this.announcing.delete(queryRunner));
      const open = this.openWrites.get(queryRunner) ?? [];
      this.openWrites.set(queryRunner, [...open.slice(-(MAX_OPEN_WRITES - 1)), announced]);
    }
    write.tables.add(table);
    this.writeOfRow.set(row, write);
    if (writtenConcurrently && !this.postgres) write.concurrentRows++;
  }

  /** The change of the row just announced, of a webhook entity that listeners may hear of. */
  listenersMayHear(queryRunner: QueryRunner, change: EntityChange): void {
    this.announcing.get(queryRunner)?.changes.push(change);
  }

  /** An after-hook, or a before-hook that failed the write: the write of the row is over. */
  writeEnded(queryRunner: QueryRunner, row: ObjectLiteral | undefined): void {
    const write = row && this.writeOfRow.get(row);
    if (write) this.close(queryRunner, write);
  }

  statementSent(queryRunner: QueryRunner, query: string): void {
    for (const write of this.writesOfStatement(queryRunner, query)) write.statementsUnanswered++;
  }

  statementAnswered(queryRunner: QueryRunner, query: string, succeeded: boolean): void {
    if (succeeded && INSERT.test(query)) this.lastInsert.set(queryRunner, query);
    for (const write of this.writesOfStatement(queryRunner, query)) {
      write.statementsUnanswered = Math.max(0, write.statementsUnanswered - 1);
      if (succeeded) {
        write.statementsWritten++;
        continue;
      }
      this.close(queryRunner, write);
      // Rows written concurrently may be written after the failed statement, or were sent beside it.
      const mayHaveWritten = write.statementsWritten > 0 || write.statementsUnanswered > 0 || write.concurrentRows > 1;
      if (mayHaveWritten && write.changes.length > 0) this.failedPartWay(queryRunner, write.changes);
    }
  }

  /** Whether the last INSERT through the query runner may have left rows it was given unwritten or unchanged. */
  lastInsertMayHaveSkippedRows(queryRunner: QueryRunner | undefined): boolean {
    const query = queryRunner && this.lastInsert.get(queryRunner);
    return query !== undefined && CONFLICT_CLAUSE.test(query);
  }

  /** Called as TypeORM begins a rollback: what failed at that level or above is undone with it. */
  rollbackBegins(queryRunner: QueryRunner): void {
    this.levelEnds(queryRunner, transactionDepth(queryRunner));
  }

  /**
   * The error a commit at the query runner's current level must fail with, if a write at that level
   * failed part-way and listeners match one of its changes; `null` at once when no write failed so.
   */
  commitRefusal(queryRunner: QueryRunner, manager: EntityManager): Promise<WebhookTransactionEndedError | null> | null {
    const depth = transactionDepth(queryRunner);
    const failed = (this.partlyWritten.get(queryRunner) ?? []).filter((write) => write.depth >= depth);
    if (failed.length === 0) {
      if (depth <= 1) this.openWrites.delete(queryRunner);
      return null;
    }
    return this.matchedEntities(
      manager,
      failed.flatMap((write) => write.changes),
    ).then((entities) => {
      if (entities.length === 0) this.levelEnds(queryRunner, depth);
      return entities.length === 0
        ? null
        : new WebhookTransactionEndedError(
            `A save() of ${entities.join(', ')} failed in this transaction after writing some of its rows, which TypeORM reports to ` +
              'no subscriber: their webhook events are missing, so the transaction is not committed. Roll it back, or make such a ' +
              'save() in a nested transaction, which rolls back by itself when the save() fails',
          );
    });
  }

  /** A level ends (committed, or rolling back): what failed in it is gone with it; at the outermost, every write is over. */
  private levelEnds(queryRunner: QueryRunner, depth: number): void {
    if (depth <= 1) this.openWrites.delete(queryRunner);
    const kept = (this.partlyWritten.get(queryRunner) ?? []).filter((write) => write.depth < depth);
    if (kept.length > 0) this.partlyWritten.set(queryRunner, kept);
    else this.partlyWritten.delete(queryRunner);
  }

  private failedPartWay(queryRunner: QueryRunner, changes: EntityChange[]): void {
    if (!queryRunner.isTransactionActive) {
      void this.logUnrecordedRows(changes);
      return;
    }
    if (this.postgres) return;
    const depth = transactionDepth(queryRunner);
    this.partlyWritten.set(queryRunner, [...(this.partlyWritten.get(queryRunner) ?? []), { depth, changes }]);
  }

  private async logUnrecordedRows(changes: EntityChange[]): Promise<void> {
    try {
      const entities = await this.matchedEntities(this.dataSource.manager, changes);
      if (entities.length === 0) return;
      this.logger.error(
        `A save() of ${entities.join(', ')} outside a transaction failed after writing some of its rows, which TypeORM reports to ` +
          'no subscriber: no webhook event was recorded for them. Make such writes in a transaction',
      );
    } catch (error) {
      this.logger.error(
        `A save() outside a transaction failed after writing some of its rows, whose listeners could not be read: ${error}`,
      );
    }
  }

  /** The names of the entities of the changes that listeners match. */
  private async matchedEntities(manager: EntityManager, changes: EntityChange[]): Promise<string[]> {
    const matched = await Promise.all(changes.map((change) => this.recorder.anyListenerMatches(manager, change)));
    return [...new Set(changes.filter((_, index) => matched[index]).map((change) => change.entity.name))];
  }

  private writesOfStatement(queryRunner: QueryRunner, query: string): WriteUnderWay[] {
    const open = this.openWrites.get(queryRunner);
    if (!open) return [];
    const table = writtenTable(query);
    return table === null ? [] : open.filter((write) => write.tables.has(table));
  }

  private close(queryRunner: QueryRunner, write: WriteUnderWay): void {
    const open = this.openWrites.get(queryRunner);
    if (!open?.includes(write)) return;
    if (open.length === 1) this.openWrites.delete(queryRunner);
    else
      this.openWrites.set(
        queryRunner,
        open.filter((other) => other !== write),
      );
  }
}

/** The name, without schema or quotes, of the table an INSERT, UPDATE or DELETE writes; `null` for any other statement. */
function writtenTable(query: string): string | null {
  const name = WRITTEN_TABLE.exec(query)?.[1];
  return name === undefined ? null : name.split('.').pop()!.replace(/[`"]/g, '');
}
