import type { ValueTransformer } from 'typeorm';

/** PostgreSQL and MySQL drivers return BIGINT as a string; ids and epoch milliseconds fit a JS number. */
export const BIGINT_AS_NUMBER: ValueTransformer = {
  to: (value: unknown) => value,
  from: (value: unknown) => (value === null || value === undefined ? value : Number(value)),
};
