import { Brackets, type DataSource, type ObjectLiteral, type SelectQueryBuilder, type WhereExpressionBuilder } from 'typeorm';
import { WebhookConfigurationError, WebhookValidationError } from '../errors/webhook.errors.js';
import { isMysqlFamily, isSqlite } from '../persistence/transaction.js';
import { CREATION_ENTITY_STATES } from '../model/creation-entity-state.enum.js';
import {
  assertKnownKeys,
  assertObject,
  requireArray,
  requireBoolean,
  requireInteger,
  requireOneOf,
  requireString,
  joinPath,
} from '../validation/input.validation.js';
import {
  ALL_OPERATORS,
  MAX_FILTER_DEPTH,
  MAX_FILTER_NODES,
  MAX_PAGE_SIZE,
  MAX_VALUE_LENGTH,
  OPERATORS_BY_KIND,
  TEXT_OPERATORS,
  type QueryField,
} from './entity-query.constants.js';
import type { CriteriaOperator, EntityQueryFilter } from './entity-query.types.js';

type Dialect = 'postgres' | 'mysql' | 'sqlite';

const COMPARISON_SQL: Partial<Record<CriteriaOperator, string>> = {
  GREATER_THAN: '>',
  GREATER_THAN_OR_EQUAL: '>=',
  LESS_THAN: '<',
  LESS_THAN_OR_EQUAL: '<=',
};

/**
 * Turns an EntityQuery into conditions on a TypeORM query builder. Field names are looked up in
 * an allow-list and every value is bound as a parameter, so no user text ever becomes SQL.
 * Text is compared and ordered by code point on every database, whatever the columns' collation
 * (MySQL compares its bytes, PostgreSQL uses the "C" collation), and NULL sorts as the smallest value.
 */
export class EntityQueryCompiler<T extends ObjectLiteral> {
  private parameterCount = 0;
  private nodeCount = 0;
  private readonly dialect: Dialect;

  constructor(
    private readonly dataSource: DataSource,
    private readonly fields: Readonly<Record<string, QueryField>>,
    private readonly qb: SelectQueryBuilder<T>,
  ) {
    this.dialect = dialectOf(dataSource);
  }

  /** A whole EntityQuery: filter, order and page. */
  applyQuery(query: unknown): void {
    assertObject(query, 'query');
    assertKnownKeys(query, 'query', ['filter', 'orderBys', 'startingEntity', 'numberOfEntities']);
    this.applyFilter(query.filter);
    this.applyOrder(query.orderBys);
    this.applyPage(query.startingEntity, query.numberOfEntities);
  }

  applyFilter(filter: unknown, path = 'query.filter'): void {
    if (filter === undefined || filter === null) return;
    this.qb.andWhere(new Brackets((where) => this.addNode(where, filter, path, 1)));
  }

  private applyOrder(orderBys: unknown, path = 'query.orderBys'): void {
    if (orderBys !== undefined) {
      requireArray(orderBys, path, 10).forEach((orderBy, index) => {
        const itemPath = `${path}[${index}]`;
        assertObject(orderBy, itemPath);
        assertKnownKeys(orderBy, itemPath, ['fieldName', 'sorting']);
        const field = this.field(orderBy.fieldName, `${itemPath}.fieldName`);
        const sorting = requireOneOf(orderBy.sorting ?? 'ASC', `${itemPath}.sorting`, ['ASC', 'DESC'] as const);
        const expression = this.byCodePoint(field, this.column(field));
        // TypeORM keeps one direction per expression: a second entry would override the first.
        if (expression in this.qb.expressionMap.orderBys) {
          throw new WebhookValidationError(`${itemPath}.fieldName`, 'is already ordered by an earlier entry');
        }
        // SQLite and MySQL sort NULL first in ascending order; PostgreSQL is told to do the same.
        const nulls = this.dialect === 'postgres' ? (sorting === 'ASC' ? 'NULLS FIRST' : 'NULLS LAST') : undefined;
        this.qb.addOrderBy(expression, sorting, nulls);
      });
    }
    // A final order by id makes pages stable; an explicit order by id already is.
    const idColumn = this.column(this.fields.id);
    if (!(idColumn in this.qb.expressionMap.orderBys)) this.qb.addOrderBy(idColumn, 'ASC');
  }

  private applyPage(startingEntity: unknown, numberOfEntities: unknown): void {
    const offset = startingEntity === undefined ? 0 : requireInteger(startingEntity, 'query.startingEntity', 0, 2_147_483_647);
    const limit =
      numberOfEntities === undefined ? MAX_PAGE_SIZE : requireInteger(numberOfEntities, 'query.numberOfEntities', 1, MAX_PAGE_SIZE);
    this.qb.offset(offset).limit(limit);
  }

  private addNode(where: WhereExpressionBuilder, node: unknown, path: string, depth: number): void {
    if (depth > MAX_FILTER_DEPTH) throw new WebhookValidationError(path, `nests deeper than ${MAX_FILTER_DEPTH} levels`);
    if (++this.nodeCount > MAX_FILTER_NODES)
      throw new WebhookValidationError(path, `makes the filter longer than ${MAX_FILTER_NODES} nodes`);
    assertObject(node, path);
    assertKnownKeys(node, path, ['type', 'fieldName', 'operator', 'value', 'children']);
    const type = requireOneOf(node.type, `${path}.type`, ['LEAF', 'AND', 'OR'] as const);
    refuseFieldsOfOtherType(node, path, type);
    if (type === 'LEAF') {
      where.andWhere(this.leafCondition(node as unknown as EntityQueryFilter, path));
      return;
    }
    const children = requireArray(node.children, `${path}.children`, MAX_FILTER_NODES);
    if (children.length === 0) throw new WebhookValidationError(`${path}.children`, 'must hold at least one filter');
    where.andWhere(
      new Brackets((group) =>
        children.forEach((child, index) => {
          const join = type === 'AND' || index === 0 ? group.andWhere.bind(group) : group.orWhere.bind(group);
          join(new Brackets((inner) => this.addNode(inner, child, `${path}.children[${index}]`, depth + 1)));
        }),
      ),
    );
  }

  private leafCondition(leaf: EntityQueryFilter, path: string): string {
    const field = this.field(leaf.fieldName, `${path}.fieldName`);
    const operator = requireOneOf(leaf.operator, `${path}.operator`, ALL_OPERATORS);
    if (!OPERATORS_BY_KIND[field.kind].includes(operator)) {
      throw new WebhookValidationError(
        `${path}.operator`,
        `${operator} does not apply to ${leaf.fieldName}; use one of ${OPERATORS_BY_KIND[field.kind].join(', ')}`,
      );
    }
    const column = this.column(field);
    if (operator === 'IS_NULL') return `${column} IS NULL`;
    if (operator === 'IS_NOT_NULL') return `${column} IS NOT NULL`;
    if (field.kind === 'date') return this.dateCondition(field, column, operator, requireDate(leaf.value, `${path}.value`));
    const value = this.bind(field, operator, leaf.value, `${path}.value`);
    switch (operator) {
      case 'EQUALS':
        return `${this.byCodePoint(field, column)} = ${value}`;
      case 'NOT_EQUALS':
        return `${this.byCodePoint(field, column)} <> ${value}`;
      case 'EQUALS_IGNORE_CASE':
        return `${this.exactlyLowered(column)} = ${this.exactlyLowered(value)}`;
      case 'NOT_EQUALS_IGNORE_CASE':
        return `${this.exactlyLowered(column)} <> ${this.exactlyLowered(value)}`;
      case 'CONTAINS':
        return `${this.position(column, value)} > 0`;
      case 'NOT_CONTAINS':
        return `${this.position(column, value)} = 0`;
      default:
        return `${this.byCodePoint(field, column)} ${COMPARISON_SQL[operator]} ${value}`;
    }
  }

  /**
   * Dates compare by the millisecond, the precision they are read back with, so that a date read
   * from an object finds it: PostgreSQL and MySQL keep microseconds, SQLite text with or without
   * milliseconds (brought to one form by strftime). EQUALS matches what lies within its millisecond.
   */
  private dateCondition(field: QueryField, column: string, operator: CriteriaOperator, date: Date): string {
    const stored = this.dialect === 'sqlite' ? `strftime('%Y-%m-%d %H:%M:%f', ${column})` : column;
    // A date past year 9999 as it is sent is beyond every date stored, and MySQL cannot read it.
    if (this.pastLastStorableYear(date)) {
      if (operator === 'EQUALS' || operator === 'GREATER_THAN' || operator === 'GREATER_THAN_OR_EQUAL') return '1 = 0';
      return `${column} IS NOT NULL`;
    }
    const from = this.bindAsStored(field, date);
    const next = new Date(date.getTime() + 1);
    const until = this.pastLastStorableYear(next) ? null : this.bindAsStored(field, next);
    if (until === null) {
      if (operator === 'EQUALS' || operator === 'GREATER_THAN_OR_EQUAL') return `${stored} >= ${from}`;
      if (operator === 'NOT_EQUALS' || operator === 'LESS_THAN') return `${stored} < ${from}`;
      return operator === 'GREATER_THAN' ? '1 = 0' : `${column} IS NOT NULL`;
    }
    switch (operator) {
      case 'EQUALS':
        return `(${stored} >= ${from} AND ${stored} < ${until})`;
      case 'NOT_EQUALS':
        return `(${stored} < ${from} OR ${stored} >= ${until})`;
      case 'GREATER_THAN':
        return `${stored} >= ${until}`;
      case 'GREATER_THAN_OR_EQUAL':
        return `${stored} >= ${from}`;
      case 'LESS_THAN':
        return `${stored} < ${from}`;
      default:
        return `${stored} < ${until}`;
    }
  }

  /**
   * Whether a date's year, as the driver sends it, is past 9999, which MySQL and MariaDB cannot read:
   * mysql2 sends the clock time of the connection's `timezone` option (by default the application's
   * zone), where the last hours of year 9999 east of UTC are year 10000 already. PostgreSQL reads such
   * a year; SQLite is sent UTC.
   */
  private pastLastStorableYear(date: Date): boolean {
    if (date.getUTCFullYear() > 9999) return true;
    if (this.dialect !== 'mysql') return false;
    const offsetMinutes = fixedOffsetMinutes((this.dataSource.options as { timezone?: string }).timezone);
    return offsetMinutes === null ? date.getFullYear() > 9999 : new Date(date.getTime() + offsetMinutes * 60_000).getUTCFullYear() > 9999;
  }

  private field(name: unknown, path: string): QueryField {
    const field = typeof name === 'string' && Object.hasOwn(this.fields, name) ? this.fields[name] : undefined;
    if (!field) throw new WebhookValidationError(path, `must be one of ${Object.keys(this.fields).join(', ')}`);
    return field;
  }

  private column(field: QueryField): string {
    const { databaseName } = this.columnOf(field);
    return `${this.qb.escape(field.alias)}.${this.qb.escape(databaseName)}`;
  }

  /** Text as its code points: MySQL's and PostgreSQL's collations may ignore case, accents or trailing spaces, or order by language. */
  private byCodePoint(field: QueryField, column: string): string {
    if (field.kind !== 'string' && field.kind !== 'state') return column;
    if (this.dialect === 'mysql') return `BINARY ${column}`;
    if (this.dialect === 'postgres') return `${column} COLLATE "C"`;
    return column;
  }

  /**
   * `LOWER()` of a text, then compared exactly: MySQL's collation would also ignore accents and trailing
   * spaces, and so would a nondeterministic collation a PostgreSQL column may be given.
   */
  private exactlyLowered(text: string): string {
    if (this.dialect === 'mysql') return `BINARY LOWER(${text})`;
    if (this.dialect === 'postgres') return `LOWER(${text}) COLLATE "C"`;
    return `LOWER(${text})`;
  }

  /** PostgreSQL refuses `strpos()` under a nondeterministic collation. */
  private position(column: string, value: string): string {
    if (this.dialect === 'postgres') return `strpos(${column} COLLATE "C", ${value})`;
    if (this.dialect === 'mysql') return `INSTR(BINARY ${column}, ${value})`;
    return `instr(${column}, ${value})`;
  }

  /** Checks a value against the field's type and binds it in the form the driver stores. */
  private bind(field: QueryField, operator: CriteriaOperator, raw: unknown, path: string): string {
    return this.bindAsStored(field, this.coerce(field, operator, raw, path));
  }

  private bindAsStored(field: QueryField, value: unknown): string {
    const name = `q${this.parameterCount++}`;
    this.qb.setParameter(name, this.dataSource.driver.preparePersistentValue(value, this.columnOf(field)));
    return `:${name}`;
  }

  private columnOf(field: QueryField) {
    return this.qb.expressionMap.findAliasByName(field.alias).metadata.findColumnWithPropertyPath(field.property)!;
  }

  private coerce(field: QueryField, operator: CriteriaOperator, value: unknown, path: string): unknown {
    switch (field.kind) {
      case 'integer':
        // A value beyond the column's type fails the statement on PostgreSQL instead of matching nothing.
        return this.columnOf(field).type === 'bigint'
          ? requireInteger(value, path, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
          : requireInteger(value, path, INT_MIN, INT_MAX);
      case 'boolean':
        return requireBoolean(value, path);
      case 'string':
        return requireString(value, path, 0, MAX_VALUE_LENGTH);
      case 'state':
        // Text operators look for any text in a state; the others compare with a state.
        return TEXT_OPERATORS.includes(operator)
          ? requireString(value, path, 0, MAX_VALUE_LENGTH)
          : requireOneOf(value, path, field.values ?? CREATION_ENTITY_STATES);
      case 'date':
        return requireDate(value, path);
    }
  }
}

/**
 * The objects an EntityQuery selects from `qb`, in the query's order. The page's ids are read first,
 * alone, and the objects then by id: ordering by expressions and paging over joined relations stay
 * plain SQL, which TypeORM's own paging of joined entities gets wrong in some versions (0.3.29).
 */
export async function searchByQuery<T extends ObjectLiteral>(
  dataSource: DataSource,
  fields: Readonly<Record<string, QueryField>>,
  qb: SelectQueryBuilder<T>,
  query: unknown,
): Promise<T[]> {
  const page = qb.clone();
  new EntityQueryCompiler(dataSource, fields, page).applyQuery(query);
  const rows: { id: number | string }[] = await page.select(`${qb.alias}.id`, 'id').getRawMany();
  if (rows.length === 0) return [];
  const ids = rows.map((row) => Number(row.id));
  const byId = new Map((await qb.andWhereInIds(ids).getMany()).map((found) => [Number(found.id), found]));
  return ids.flatMap((id) => byId.get(id) ?? []);
}

/**
 * A group holds only `children`, a leaf no `children`: a field that another type of node would read
 * is refused rather than ignored (absent, `null` or, on a leaf, an empty list count as not given).
 */
function refuseFieldsOfOtherType(node: Record<string, unknown>, path: string, type: 'LEAF' | 'AND' | 'OR'): void {
  const given = (key: string) => node[key] !== undefined && node[key] !== null;
  const emptyList = Array.isArray(node.children) && node.children.length === 0;
  const strayFields =
    type === 'LEAF' ? ['children'].filter((key) => given(key) && !emptyList) : ['fieldName', 'operator', 'value'].filter(given);
  if (strayFields.length > 0) {
    throw new WebhookValidationError(
      joinPath(path, strayFields[0]),
      `is not read by a ${type} node; a LEAF takes fieldName, operator and value, AND and OR take children`,
    );
  }
}

/**
 * The offset in minutes of mysql2's `timezone` option as mysql2 reads it: `local` (or none) is the
 * application's zone (`null`), `Z` and `±HH:MM` (a space for `+`) fixed; anything else it replaces by `Z`.
 */
function fixedOffsetMinutes(timezone: string | undefined): number | null {
  if (!timezone || timezone === 'local') return null;
  const match = /^([ +-])(\d\d):(\d\d)$/.exec(timezone);
  if (!match) return 0;
  const minutes = Number(match[2]) * 60 + Number(match[3]);
  return match[1] === '-' ? -minutes : minutes;
}

/** The 32-bit integer columns' range. */
const INT_MIN = -2_147_483_648;
const INT_MAX = 2_147_483_647;

function requireDate(value: unknown, path: string): Date {
  const date = value instanceof Date ? value : typeof value === 'string' ? isoDate(value) : null;
  if (!date || Number.isNaN(date.getTime())) {
    throw new WebhookValidationError(path, 'must be a Date or an ISO 8601 date string: a day (UTC), or a time with Z or an offset');
  }
  // The years every database compares: PostgreSQL refuses a timestamp far beyond them.
  const year = date.getUTCFullYear();
  if (year < 1 || year > 9999) throw new WebhookValidationError(path, 'must be a date of the years 1 to 9999');
  return date;
}

/** A day, or a day and time with its zone: other forms `Date` reads in the application's own zone, or guesses at. */
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2})))?$/;

/** The date of an ISO 8601 text, or null: also for a day or time that does not exist, which `Date` would roll over. */
function isoDate(text: string): Date | null {
  const parts = ISO_DATE.exec(text);
  if (!parts) return null;
  const [year, month, day, hour = 0, minute = 0, second = 0, offsetHours = 0, offsetMinutes = 0] = parts
    .slice(1)
    .map((part) => (part === undefined ? undefined : Number(part)));
  const daysInMonth = new Date(Date.UTC(year!, month!, 0)).getUTCDate();
  const exists =
    month! >= 1 &&
    month! <= 12 &&
    day! >= 1 &&
    day! <= daysInMonth &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59 &&
    offsetHours <= 23 &&
    offsetMinutes <= 59;
  return exists ? new Date(text) : null;
}

export function dialectOf(dataSource: DataSource): Dialect {
  const type: string = dataSource.options.type;
  if (type === 'postgres') return 'postgres';
  if (isMysqlFamily(dataSource)) return 'mysql';
  if (isSqlite(dataSource)) return 'sqlite';
  throw new WebhookConfigurationError(
    'DataSource type',
    `"${type}" is not supported; use postgres, mysql, mariadb, better-sqlite3 or sqlite`,
  );
}
