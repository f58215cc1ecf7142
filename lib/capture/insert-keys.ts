import type { EntityMetadata, ObjectLiteral } from 'typeorm';

/** A row's primary key as its insert began: the values given, or `'generated'` when it was to be generated. */
export type KeyAtInsert = readonly unknown[] | 'generated';

/**
 * The key of a row as its insert begins, for an entity with a generated key column: the values given,
 * or `'generated'` when it is to be generated. TypeORM may then report another key: SQLite's last
 * inserted rowid, or another row's after an insert with a conflict clause. `undefined` for an entity
 * without such a column, and for a key given as raw SQL or as an object a transformer turns into it:
 * TypeORM's report of the key is taken.
 */
export function keyAtInsertOf(row: ObjectLiteral, metadata: EntityMetadata): KeyAtInsert | undefined {
  if (!metadata.primaryColumns.some((column) => column.isGenerated)) return undefined;
  if (!hasKey(metadata, row)) return 'generated';
  const values = metadata.primaryColumns.map((column) => column.getEntityValue(row));
  return values.every(storable) ? values : undefined;
}

/** Whether the row holds a value in every primary column. */
export function hasKey(metadata: EntityMetadata, row: ObjectLiteral): boolean {
  return metadata.primaryColumns.every((column) => {
    const value = column.getEntityValue(row);
    return value !== undefined && value !== null;
  });
}

/** The row as inserted: with the key values given at its insert in its primary columns, if any were. */
export function withKeyAtInsert(metadata: EntityMetadata, row: ObjectLiteral, key: KeyAtInsert | undefined): ObjectLiteral {
  return key === undefined || key === 'generated' ? row : withKey(metadata, row, key);
}

/** A copy of the row with the values in its primary columns, in their order. */
export function withKey(metadata: EntityMetadata, row: ObjectLiteral, values: readonly unknown[]): ObjectLiteral {
  const keyed = { ...row };
  metadata.primaryColumns.forEach((column, index) => column.setEntityValue(keyed, values[index]));
  return keyed;
}

/** A value that is compared as it is stored: not raw SQL (a function), nor an object a transformer may turn into anything. */
export function storable(value: unknown): boolean {
  const type = typeof value;
  return type === 'string' || type === 'number' || type === 'bigint' || type === 'boolean' || value instanceof Date;
}
