import type { ObjectLiteral } from 'typeorm';
import type { KeyAtInsert } from './insert-keys.js';

/** What the capture notes of a row as its write begins, for the hook that follows the write. */
export interface WriteStart {
  /** For an insert: the key given, or `'generated'` (see `keyAtInsertOf`). */
  readonly keyAtInsert?: KeyAtInsert;
  /** On better-sqlite3: the transaction open as the write began (see `SharedConnectionWrites`). */
  readonly openTransaction?: number | null;
}

/**
 * The starts of writes, by row, in one entry each: a `WeakMap` entry for a new object costs more than
 * the record it holds, and every save of a webhook entity pays for it, heard by a listener or not.
 */
export class WriteStarts {
  private readonly starts = new WeakMap<ObjectLiteral, WriteStart>();

  /** Notes the start, forgetting what a former write of the same object (an insert before remove(), say) noted. */
  begins(row: ObjectLiteral, start: WriteStart): void {
    if (start.keyAtInsert === undefined && start.openTransaction === undefined) this.starts.delete(row);
    else this.starts.set(row, start);
  }

  /** What was noted as the row's write began; `undefined` when its beginning was not seen. */
  of(row: ObjectLiteral): WriteStart | undefined {
    return this.starts.get(row);
  }

  /** Once the row's capture is done: a later capture of the same object without a write seen beginning is then told so. */
  forget(row: ObjectLiteral): void {
    this.starts.delete(row);
  }
}
