import type { CriteriaOperator } from './entity-query.types.js';

export const MAX_PAGE_SIZE = 100;
export const MAX_FILTER_DEPTH = 8;
export const MAX_FILTER_NODES = 200;
export const MAX_VALUE_LENGTH = 1000;

export type QueryFieldKind = 'integer' | 'string' | 'boolean' | 'date' | 'state';

/** A searchable field: the joined alias and property it reads, and the type of its values. */
export interface QueryField {
  alias: string;
  property: string;
  kind: QueryFieldKind;
  /** The values of a `state` field, when they are not the lifecycle states (`CreationEntityState`). */
  values?: readonly string[];
}

const EQUALITY: CriteriaOperator[] = ['EQUALS', 'NOT_EQUALS', 'IS_NULL', 'IS_NOT_NULL'];
const ORDERING: CriteriaOperator[] = ['GREATER_THAN', 'GREATER_THAN_OR_EQUAL', 'LESS_THAN', 'LESS_THAN_OR_EQUAL'];
export const TEXT_OPERATORS: readonly CriteriaOperator[] = ['EQUALS_IGNORE_CASE', 'NOT_EQUALS_IGNORE_CASE', 'CONTAINS', 'NOT_CONTAINS'];

export const OPERATORS_BY_KIND: Record<QueryFieldKind, readonly CriteriaOperator[]> = {
  integer: [...EQUALITY, ...ORDERING],
  date: [...EQUALITY, ...ORDERING],
  string: [...EQUALITY, ...ORDERING, ...TEXT_OPERATORS],
  state: [...EQUALITY, ...TEXT_OPERATORS],
  boolean: EQUALITY,
};

export const ALL_OPERATORS: readonly CriteriaOperator[] = [...EQUALITY, ...TEXT_OPERATORS, ...ORDERING];
