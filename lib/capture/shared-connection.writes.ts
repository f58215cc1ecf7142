import type { DataSource, ObjectLiteral, QueryRunner } from 'typeorm';
import { sqliteConnectionInTransaction, transactionDepth } from '../persistence/transaction.js';

/**
 * On better-sqlite3 TypeORM runs every transaction on one connection. A write may therefore run in
 * a transaction that another part of the application began, which may end before the write's hook
 * runs; or begin outside any transaction and see one begin beside it before its hook runs. Tells
 * whether a row's write surely ran in the transaction that is open when it is captured.
 */
export class SharedConnectionWrites {
  /** Counts the ends of transactions; with the connection's state it tells one transaction from the next. */
  private transactionsEnded = 0;
  private readonly openWhenBegun = new WeakMap<ObjectLiteral, number | null>();

  constructor(private readonly dataSource: DataSource) {}

  writeBegins(row: ObjectLiteral): void {
    this.openWhenBegun.set(row, this.openTransaction());
  }

  /** Called before TypeORM commits or rolls back, so that a capture that follows never takes the ending transaction for open. */
  transactionEnds(queryRunner: QueryRunner): void {
    if (transactionDepth(queryRunner) <= 1) this.transactionsEnded++;
  }

  /**
   * Whether the transaction open now was open when the row's write began and has not ended since;
   * undefined when the write's beginning was not seen.
   */
  ranInOpenTransaction(row: ObjectLiteral): boolean | undefined {
    const open = this.openWhenBegun.get(row);
    if (open === undefined) return undefined;
    return open !== null && open === this.openTransaction();
  }

  /** Once the row's capture is done: a later capture of the same object without a write seen beginning is then told so. */
  forget(row: ObjectLiteral): void {
    this.openWhenBegun.delete(row);
  }

  private openTransaction(): number | null {
    return sqliteConnectionInTransaction(this.dataSource) ? this.transactionsEnded : null;
  }
}
