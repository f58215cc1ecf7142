import type { DataSource, EntityMetadata, ObjectLiteral, QueryRunner } from 'typeorm';
import { SqlText } from '../persistence/sql-text.js';
import { storable, withKey, withKeyAtInsert, type KeyAtInsert } from './insert-keys.js';
import { sqliteConnectionInTransaction, synchronousSqlite, transactionDepth, type SynchronousSqlite } from '../persistence/transaction.js';

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
  private readonly uniqueIndexesByTable = new Map<string, ColumnMetadata[][]>();

  private readonly sql: SqlText;

  constructor(private readonly dataSource: DataSource) {
    this.sql = new SqlText(dataSource);
  }

  /**
   * An inserted row with the primary key it really has. TypeORM takes a generated key from SQLite's
   * last inserted rowid, which an insert that updated or skipped an existing row (`upsert()`,
   * `orUpdate()`, `orIgnore()`) leaves as it was: another row's, perhaps of another table. A key
   * given with the row is taken as given, and trusted only if its row holds the state and space
   * written (the values of `checked`): an insert with a conflict clause may have skipped the row or
   * left its state. A generated key is trusted when its row holds those values and the values written
   * of each unique index of the table (as after any plain insert); else the row is looked for by the
   * values of a unique index and of `checked`, the conflict an upsert goes by. `null` when no row is
   * found so (its transaction rolled back, say, or the insert skipped it); the row as reported when
   * the values cannot be compared as stored.
   */
  insertedRow(
    metadata: EntityMetadata,
    reported: ObjectLiteral,
    checked: readonly string[],
    keyAtInsert: KeyAtInsert | undefined,
  ): ObjectLiteral | null {
    const sqlite = synchronousSqlite(this.dataSource);
    if (!sqlite) return reported;
    const row = withKeyAtInsert(metadata, reported, keyAtInsert);
    const writtenOf = (columns: readonly ColumnMetadata[]) => columns.every((column) => storable(column.getEntityValue(row)));
    const checkedColumns = checked.map((property) => metadata.findColumnWithPropertyName(property)!);
    const keyAndChecked = [...metadata.primaryColumns, ...checkedColumns];
    if (!writtenOf(keyAndChecked)) return row;
    try {
      if (keyAtInsert !== 'generated') return sqlite.execute(...this.lookup(metadata, row, keyAndChecked)).rows.length > 0 ? row : null;
      const uniques = this.uniqueIndexes(sqlite, metadata).filter(writtenOf);
      if (sqlite.execute(...this.lookup(metadata, row, [...keyAndChecked, ...uniques.flat()])).rows.length > 0) return row;
      for (const columns of uniques) {
        const found = sqlite.execute(...this.lookup(metadata, row, [...columns, ...checkedColumns])).rows;
        if (found.length !== 1) continue;
        return withKey(
          metadata,
          row,
          metadata.primaryColumns.map((_, index) => found[0][`key${index}`]),
        );
      }
    } catch {
      // A value the driver cannot bind as a transformer left it: the write itself went through.
      return row;
    }
    return null;
  }

  /**
   * The columns of each unique index of the entity's table, as SQLite has them (declared on the entity
   * or made by a migration of the application's), without the generated key's and partial ones.
   */
  private uniqueIndexes(sqlite: SynchronousSqlite, metadata: EntityMetadata): ColumnMetadata[][] {
    const table = metadata.tablePath;
    let indexes = this.uniqueIndexesByTable.get(table);
    if (!indexes) {
      const escape = (name: string) => this.dataSource.driver.escape(name);
      // A table of an attached database is `schema.table`: the pragma takes the schema before its name.
      const parts = table.split('.');
      const tableName = parts.pop()!;
      const schema = parts.length > 0 ? `${escape(parts.join('.'))}.` : '';
      const listed = sqlite.execute(`PRAGMA ${schema}index_list(${escape(tableName)})`, []).rows;
      indexes = listed
        .filter((index) => Number(index.unique) === 1 && Number(index.partial) !== 1)
        .map((index) => sqlite.execute(`PRAGMA ${schema}index_info(${escape(String(index.name))})`, []).rows)
        .map((columns) => columns.map((column) => metadata.findColumnWithDatabaseName(String(column.name))))
        .filter((columns): columns is ColumnMetadata[] => columns.length > 0 && columns.every((column) => column && !column.isGenerated));
      this.uniqueIndexesByTable.set(table, indexes);
    }
    return indexes;
  }

  /** The keys of the rows that hold the row's values of `columns`, in the form SQLite stores them. */
  private lookup(metadata: EntityMetadata, row: ObjectLiteral, columns: readonly ColumnMetadata[]): [string, unknown[]] {
    const escape = (name: string) => this.dataSource.driver.escape(name);
    const conditions = columns.map((column) => `${escape(column.databaseName)} = ?`).join(' AND ');
    const values = columns.map((column) => this.dataSource.driver.preparePersistentValue(column.getEntityValue(row), column));
    const keys = metadata.primaryColumns.map((column, index) => `${escape(column.databaseName)} AS key${index}`).join(', ');
    return [`SELECT ${keys} FROM ${this.sql.table(metadata.target)} WHERE ${conditions} LIMIT 2`, values];
  }

  /** Called before TypeORM commits or rolls back, so that a capture that follows never takes the ending transaction for open. */
  transactionEnds(queryRunner: QueryRunner): void {
    if (transactionDepth(queryRunner) <= 1) this.transactionsEnded++;
  }

  /**
   * Whether the transaction open now is the one `openAtStart` (from `openTransaction()` as a write
   * began) names, not ended since; undefined when the write's beginning was not seen.
   */
  ranInOpenTransaction(openAtStart: number | null | undefined): boolean | undefined {
    if (openAtStart === undefined) return undefined;
    return openAtStart !== null && openAtStart === this.openTransaction();
  }

  /** The transaction open on the connection now, told from the ones before and after it; `null` outside any. */
  openTransaction(): number | null {
    return sqliteConnectionInTransaction(this.dataSource) ? this.transactionsEnded : null;
  }
}
