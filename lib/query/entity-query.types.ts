export type EntityQueryFilterType = 'LEAF' | 'AND' | 'OR';

export type CriteriaOperator =
  | 'EQUALS'
  | 'NOT_EQUALS'
  | 'EQUALS_IGNORE_CASE'
  | 'NOT_EQUALS_IGNORE_CASE'
  | 'CONTAINS'
  | 'NOT_CONTAINS'
  | 'GREATER_THAN'
  | 'GREATER_THAN_OR_EQUAL'
  | 'LESS_THAN'
  | 'LESS_THAN_OR_EQUAL'
  | 'IS_NULL'
  | 'IS_NOT_NULL';

export interface EntityQueryFilter {
  type: EntityQueryFilterType;
  /** LEAF only: a field of the searched object, dotted for related ones (`url.id`). */
  fieldName?: string;
  /** LEAF only. */
  operator?: CriteriaOperator;
  /** LEAF only; not used by IS_NULL / IS_NOT_NULL. */
  value?: unknown;
  /** AND / OR only. */
  children?: EntityQueryFilter[];
}

export interface EntityQueryOrderBy {
  fieldName: string;
  sorting: 'ASC' | 'DESC';
}

export interface EntityQuery {
  filter?: EntityQueryFilter;
  orderBys?: EntityQueryOrderBy[];
  /** Number of matches to skip. Default 0. */
  startingEntity?: number;
  /** Page size, 1 to 100. Default 100. */
  numberOfEntities?: number;
}
