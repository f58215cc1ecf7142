import { createHash } from 'node:crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import { onDriverConnection, type PostgresConnection } from './driver-query.js';

/**
 * A PostgreSQL statement that each connection parses and plans once, under a name taken from its
 * text, instead of with every run: for capture's insert, parsing and planning were about half of
 * what it added to a save(). It runs on the connection of the given query runner (so inside its
 * transaction) and is logged and its errors wrapped as TypeORM does for its own queries.
 */
export class PreparedStatement {
  readonly name: string;

  constructor(
    private readonly dataSource: DataSource,
    readonly text: string,
  ) {
    // A name per text: connections are shared by every module instance on a DataSource, and a name
    // prepared once must never stand for another text.
    this.name = `webhook_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
  }

  /** `beforeSending` runs right before the statement is handed to the connection, and may refuse it by throwing. */
  async run(queryRunner: QueryRunner, beforeSending: () => void, values: unknown[]): Promise<void> {
    await onDriverConnection(
      this.dataSource,
      queryRunner,
      this.text,
      values,
      (connection: PostgresConnection) => connection.query({ name: this.name, text: this.text, values }),
      beforeSending,
    );
  }
}
