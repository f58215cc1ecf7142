import type { DataSource, EntityMetadata, ObjectLiteral, QueryRunner } from 'typeorm';
import { sqliteConnectionInTransaction, synchronousSqlite, transactionDepth } from '../persistence/transaction.js';

type ColumnMetadata = EntityMetadata['columns'][number];

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
  /** Rows inserted without a value for a generated primary key column. */
  private readonly idToBeGenerated = new WeakSet<ObjectLiteral>();

  constructor(private readonly dataSource: DataSource) {}

  writeBegins(row: ObjectLiteral, metadata: EntityMetadata, inserted: boolean): void {
    this.openWhenBegun.set(row, this.openTransaction());
    if (inserted && metadata.primaryColumns.some((column) => column.isGenerated && column.getEntityValue(row) === undefined)) {
      this.idToBeGenerated.add(row);
    }
  }

  /**
   * An inserted row with the primary key it really has. TypeORM takes a generated key from SQLite's
   * last inserted rowid, which an `upsert()` that updated an existing row leaves as it was: another
   * row's, perhaps of another table. The row is looked for by that key and the values written, then
   * by these values alone; `null` when no single row holds them (its transaction rolled back, say).
   */
  insertedRow(metadata: EntityMetadata, row: ObjectLiteral): ObjectLiteral | null {
    if (!this.idToBeGenerated.has(row)) return row;
    const sqlite = synchronousSqlite(this.dataSource);
    if (!sqlite) return row;
    const written = this.writtenColumns(metadata, row);
    if (sqlite.execute(...this.lookup(metadata, row, written, true)).rows.length > 0) return row;
    if (written.length === 0) return null;
    const found = sqlite.execute(...this.lookup(metadata, row, written, false)).rows;
    if (found.length !== 1) return null;
    const withKey = { ...row };
    metadata.primaryColumns.forEach((column, index) => column.setEntityValue(withKey, found[0][`key${index}`]));
    return withKey;
  }

  /** The columns an insert wrote from the row's values, in the form SQLite stores them. */
  private writtenColumns(metadata: EntityMetadata, row: ObjectLiteral): [ColumnMetadata, unknown][] {
    return metadata.columns
      .filter((column) => !column.isGenerated && !column.isCreateDate && !column.isUpdateDate && !column.isVersion)
      .filter((column) => !column.isDeleteDate && !column.isVirtual && !column.relationMetadata)
      .filter((column) => column.getEntityValue(row) !== undefined)
      .map((column) => [column, this.dataSource.driver.preparePersistentValue(column.getEntityValue(row), column)]);
  }

  private lookup(metadata: EntityMetadata, row: ObjectLiteral, written: [ColumnMetadata, unknown][], byKey: boolean): [string, unknown[]] {
    const escape = (name: string) => this.dataSource.driver.escape(name);
    const conditions: string[] = [];
    const values: unknown[] = [];
    const compare = (column: ColumnMetadata, value: unknown) => {
      conditions.push(`${escape(column.databaseName)} ${value === null ? 'IS NULL' : '= ?'}`);
      if (value !== null) values.push(value);
    };
    for (const [column, value] of written) compare(column, value);
    if (byKey) metadata.primaryColumns.forEach((column) => compare(column, column.getEntityValue(row) ?? null));
    const keys = metadata.primaryColumns.map((column, index) => `${escape(column.databaseName)} AS key${index}`).join(', ');
    const table = metadata.tablePath.split('.').map(escape).join('.');
    return [`SELECT ${keys} FROM ${table} WHERE ${conditions.join(' AND ') || '1 = 1'} LIMIT 2`, values];
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
