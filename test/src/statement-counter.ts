import type { Logger } from 'typeorm';

/** A TypeORM logger that counts the SQL statements sent while it is recording. */
export class StatementCounter implements Logger {
  private recording: string[] | null = null;

  async count(work: () => Promise<unknown>): Promise<string[]> {
    this.recording = [];
    try {
      await work();
      return this.recording;
    } finally {
      this.recording = null;
    }
  }

  logQuery(query: string): void {
    this.recording?.push(query);
  }

  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}
