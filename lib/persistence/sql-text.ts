import type { DataSource, EntityTarget, ObjectLiteral } from 'typeorm';
import { isMysqlFamily, isSqlite } from './transaction.js';

/** A statement and its bound values, in the driver's own placeholder style. */
export type Statement = [sql: string, parameters: unknown[]];

/**
 * SQL text for the hot statements of capture and delivery, written once per DataSource from the entity
 * metadata (so a host's naming strategy or table prefix is respected). Built by hand rather than
 * through the query builder, whose statement building costs more CPU than the database spends
 * on these statements. Every string goes as a bound value; ids and times are integers the module
 * computed, written as StatementBuilder says.
 */
export class SqlText {
  readonly postgres: boolean;
  readonly sqlite: boolean;
  /** MySQL or MariaDB. */
  readonly mysql: boolean;

  constructor(private readonly dataSource: DataSource) {
    this.postgres = dataSource.options.type === 'postgres';
    this.sqlite = isSqlite(dataSource);
    this.mysql = isMysqlFamily(dataSource);
  }

  /** `schema.table` of an entity, quoted. */
  table(entity: EntityTarget<ObjectLiteral>): string {
    return this.dataSource
      .getMetadata(entity)
      .tablePath.split('.')
      .map((part) => this.dataSource.driver.escape(part))
      .join('.');
  }

  /** The quoted column of an entity's property, optionally behind a table alias. */
  column(entity: EntityTarget<ObjectLiteral>, property: string, alias?: string): string {
    const name = this.dataSource.driver.escape(this.dataSource.getMetadata(entity).findColumnWithPropertyName(property)!.databaseName);
    return alias ? `${this.dataSource.driver.escape(alias)}.${name}` : name;
  }

  /**
   * The milliseconds from a date the database wrote with its own clock (`CreateDateColumn`,
   * `UpdateDateColumn`) to the database's now, as SQL. PostgreSQL and MySQL keep such a date as a clock
   * time of the session's zone, which the application reads as one of its own zone: compared in the
   * database, it gives the same age whatever zone the application runs in.
   */
  msSinceDatabaseWrote(column: string): string {
    if (this.postgres) return `(EXTRACT(EPOCH FROM (LOCALTIMESTAMP - ${column})) * 1000)`;
    if (this.sqlite) return `((julianday('now') - julianday(${column})) * 86400000.0)`;
    return `(TIMESTAMPDIFF(MICROSECOND, ${column}, CURRENT_TIMESTAMP(6)) / 1000)`;
  }

  /**
   * The database's now plus `ms` (an integer), as SQL, in the form a date column without time zone
   * holds it: written and compared so, a date is the same for instances in any time zone.
   */
  databaseNowPlus(ms: number): string {
    const whole = Math.trunc(ms);
    if (this.postgres) return `(LOCALTIMESTAMP + interval '${whole} milliseconds')`;
    if (this.sqlite) return `strftime('%Y-%m-%d %H:%M:%f', 'now', '${whole / 1000} seconds')`;
    return mysqlNowPlusMicroseconds(whole * 1000);
  }

  /**
   * The database's now plus `ms`, for a date column of the module's tables that is waited for: MySQL's
   * and MariaDB's keep whole seconds, cut or rounded, so there a date in the future is moved a second
   * less a microsecond later, which stores it no earlier than the exact date and less than 1.5 s after
   * it. Now itself is kept as it is: whatever waits for it comes after it was written.
   */
  databaseDateAtLeast(ms: number): string {
    if (this.postgres || this.sqlite || Math.trunc(ms) <= 0) return this.databaseNowPlus(ms);
    return mysqlNowPlusMicroseconds(Math.trunc(ms) * 1000 + 999_999);
  }

  /** A value as the driver stores it in an entity's column (dates above all, whose form differs per driver). */
  stored(entity: EntityTarget<ObjectLiteral>, property: string, value: unknown): unknown {
    return this.dataSource.driver.preparePersistentValue(value, this.dataSource.getMetadata(entity).findColumnWithPropertyName(property)!);
  }

  /** `INSERT INTO table` for a statement that may write several rows (see `multiRowVerb`). */
  insertInto(entity: EntityTarget<ObjectLiteral>): string {
    return `${this.multiRowVerb('INSERT')} INTO ${this.table(entity)}`;
  }

  /** `UPDATE table` for a statement that may change several rows (see `multiRowVerb`). */
  update(entity: EntityTarget<ObjectLiteral>): string {
    return `${this.multiRowVerb('UPDATE')} ${this.table(entity)}`;
  }

  /**
   * On SQLite with `OR FAIL`. For a statement over several rows that a NOT NULL column could abort
   * halfway, SQLite keeps a statement journal to undo that statement alone, in a temporary file once
   * it passes 64 KiB; for ten rows that costs more than writing them. The module's statements write
   * only values it computed, so no constraint can fail halfway; a full disk or an I/O error then rolls
   * back the whole transaction, as it does for any statement of a single row (see
   * reopenTransactionEndedBySqlite).
   */
  private multiRowVerb(verb: 'INSERT' | 'UPDATE'): string {
    return this.sqlite ? `${verb} OR FAIL` : verb;
  }

  /** Row locks that other instances skip; SQLite has a single writer and needs none. */
  get skipLocked(): string {
    return this.sqlite ? '' : ' FOR UPDATE SKIP LOCKED';
  }

  /** Writes one statement's text and collects its bound values as they are written. */
  builder(): StatementBuilder {
    return new StatementBuilder(this.postgres, this.sqlite);
  }

  /** Numbers the placeholders of `sql`, where `?` marks each bound value, in the driver's style. */
  statement(sql: string, parameters: unknown[]): Statement {
    if (!this.postgres) return [sql, parameters];
    let index = 0;
    return [sql.replace(/\?/g, () => `$${++index}`), parameters];
  }
}

/**
 * The text of one statement and its bound values, in the order the text is written: each call
 * returns what goes into the text at that place, so the text must be written from left to right.
 *
 * Module-computed integers go inline on PostgreSQL and MySQL, which parse every text anew. On SQLite
 * they are bound, so that the text stays the same from one batch to the next: TypeORM keeps a
 * prepared better-sqlite3 statement per text, in a cache of 100 texts that it shares with the host
 * application, and a new text each time would be prepared each time and push the host's statements out.
 */
export class StatementBuilder {
  readonly parameters: unknown[] = [];

  constructor(
    private readonly postgres: boolean,
    private readonly sqlite: boolean,
  ) {}

  /** A bound value. */
  bind(value: unknown): string {
    this.parameters.push(value);
    return '?';
  }

  /** An integer the module computed. */
  integer(value: number): string {
    return this.sqlite ? this.bind(safeInteger(value)) : integer(value);
  }

  /** `column IN (…)` for module-computed integers; on PostgreSQL an array, which plans in a fraction of the time of a long list. */
  inIntegers(column: string, values: readonly number[]): string {
    if (this.postgres) return `${column} = ANY('{${values.map(integer).join(',')}}')`;
    if (this.sqlite) return `${column} IN (SELECT value FROM json_each(${this.bind(JSON.stringify(values.map(safeInteger)))}))`;
    return `${column} IN (${values.map(integer).join(', ')})`;
  }

  /** The statement with `?` placeholders; SqlText.statement numbers them for PostgreSQL. */
  done(sql: string): Statement {
    return [sql, this.parameters];
  }
}

/**
 * Module-computed integers (or NULLs) as the text of a PostgreSQL array, to bind as one value: the
 * driver would otherwise quote and escape every element of a JavaScript array.
 */
export function integerArray(values: readonly (number | null)[]): string {
  return `{${values.map((value) => (value === null ? 'NULL' : integer(value))).join(',')}}`;
}

/** An integer the module computed, as SQL text; anything else is a bug, never user input to escape. */
export function integer(value: number): string {
  return String(safeInteger(value));
}

function safeInteger(value: number): number {
  if (!Number.isSafeInteger(value)) throw new Error(`not a safe integer: ${value}`);
  return value;
}

function mysqlNowPlusMicroseconds(microseconds: number): string {
  return `(CURRENT_TIMESTAMP(6) + INTERVAL ${microseconds} MICROSECOND)`;
}
