import { types } from 'node:util';
import { WebhookValidationError } from '../errors/webhook.errors.js';

/** Largest id or space id a webhook table holds (a 32-bit signed integer column). */
export const MAX_ID = 2_147_483_647;

export function assertObject(value: unknown, field: string): asserts value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || isBuiltInValue(value)) {
    throw new WebhookValidationError(field, 'must be an object');
  }
}

/**
 * An array, a date, a collection, a buffer or another built-in value, told by what it is rather than
 * by its `Symbol.toStringTag`: its data is not in fields of its own. Any other object is taken, a plain
 * one or an instance of a class of the application (a DTO a ValidationPipe made).
 */
function isBuiltInValue(value: object): boolean {
  return (
    Array.isArray(value) ||
    types.isDate(value) ||
    types.isRegExp(value) ||
    types.isMap(value) ||
    types.isSet(value) ||
    types.isWeakMap(value) ||
    types.isWeakSet(value) ||
    types.isPromise(value) ||
    types.isNativeError(value) ||
    types.isBoxedPrimitive(value) ||
    types.isAnyArrayBuffer(value) ||
    types.isArrayBufferView(value)
  );
}

/**
 * Refuses keys that are not in `allowed`, which also keeps `__proto__` and friends out. A key whose
 * value is `undefined` gives nothing and passes (the optional fields of a DTO class that were not set).
 */
export function assertKnownKeys(value: Record<string, unknown>, field: string, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (value[key] !== undefined && !allowed.includes(key)) {
      throw new WebhookValidationError(joinPath(field, key), `is not a known field; allowed: ${allowed.join(', ')}`);
    }
  }
}

/** Whether `value` is an id or space id a webhook table holds. */
export function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_ID;
}

export function requireId(value: unknown, field: string): number {
  if (!isId(value)) {
    throw new WebhookValidationError(field, `must be an integer from 1 to ${MAX_ID}`);
  }
  return value;
}

export function requireInteger(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new WebhookValidationError(field, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

export function requireString(value: unknown, field: string, min: number, max: number): string {
  if (typeof value !== 'string' || !hasCharactersBetween(value, min, max)) {
    throw new WebhookValidationError(field, `must be a string of ${min} to ${max} characters`);
  }
  // PostgreSQL stores no NUL character in text, and refuses the statement that holds one.
  if (value.includes('\u0000')) throw new WebhookValidationError(field, 'must not contain the NUL character (\\u0000)');
  return value;
}

/**
 * Characters as the databases count them in a `varchar(n)`: code points, so that an emoji counts once,
 * not as its two UTF-16 units.
 */
export function characterCount(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** A string never has more characters than UTF-16 units, nor fewer than half as many. */
function hasCharactersBetween(text: string, min: number, max: number): boolean {
  if (text.length < min || text.length > 2 * max) return false;
  const count = characterCount(text);
  return count >= min && count <= max;
}

export function requireBoolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw new WebhookValidationError(field, 'must be true or false');
  return value;
}

export function requireOneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new WebhookValidationError(field, `must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

export function requireArray(value: unknown, field: string, maxLength: number): unknown[] {
  if (!Array.isArray(value) || value.length > maxLength) {
    throw new WebhookValidationError(field, `must be a list of at most ${maxLength} items`);
  }
  // forEach and map skip a hole: an OR of holes would match everything.
  const hole = firstHole(value);
  if (hole >= 0) throw new WebhookValidationError(`${field}[${hole}]`, HOLE_REASON);
  return value;
}

export const HOLE_REASON = 'is missing: the list has a hole here';

/** The index of a list's first hole (`new Array(1)`, `[, x]`), or -1. */
export function firstHole(list: readonly unknown[]): number {
  for (let index = 0; index < list.length; index++) if (!(index in list)) return index;
  return -1;
}

export function joinPath(parent: string, key: string): string {
  return parent ? `${parent}.${key}` : key;
}
