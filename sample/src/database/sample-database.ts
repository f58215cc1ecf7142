import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSourceOptions } from 'typeorm';

export interface SampleDatabase {
  options: DataSourceOptions;
  /** For the person reading the log: which database the app runs on. */
  description: string;
  /** Removes what the sample created for itself (the SQLite file); a PostgreSQL database is left as it is. */
  remove(): void;
}

/** PostgreSQL when `DATABASE_URL` is set, else SQLite in a new file under the OS temp directory. */
export function sampleDatabase(databaseUrl = process.env.DATABASE_URL): SampleDatabase {
  return databaseUrl ? postgres(databaseUrl) : freshSqlite();
}

function postgres(url: string): SampleDatabase {
  if (!/^postgres(ql)?:\/\//.test(url)) throw new Error('DATABASE_URL must be a postgres:// URL');
  return { options: { type: 'postgres', url }, description: `PostgreSQL at ${withoutPassword(url)}`, remove: () => undefined };
}

function freshSqlite(): SampleDatabase {
  const directory = mkdtempSync(join(tmpdir(), 'nestjs-webhook-listener-sample-'));
  const file = join(directory, 'sample.sqlite');
  return {
    options: { type: 'better-sqlite3', database: file },
    description: `SQLite in ${file}`,
    remove: () => rmSync(directory, { recursive: true, force: true }),
  };
}

function withoutPassword(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}
