import type { MigrationInterface, QueryRunner } from 'typeorm';
import { keepingIdSequence } from './id-sequence.js';

/** An entity's registered id (`listenerEntityId`) may exceed 32 bits, as wallee's own ids do. */
export class WebhookEntityIdBigintSqlite1796604208908 implements MigrationInterface {
  name = 'WebhookEntityIdBigintSqlite1796604208908';

  async up(queryRunner: QueryRunner): Promise<void> {
    await rebuildEventTable(queryRunner, 'bigint');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await rebuildEventTable(queryRunner, 'integer');
  }
}

/** SQLite changes a column's type by copying its table into a new one. */
async function rebuildEventTable(queryRunner: QueryRunner, listenerEntityIdType: string): Promise<void> {
  await keepingIdSequence(queryRunner, 'webhook_event', async () => {
    await queryRunner.query(`DROP INDEX "IDX_webhook_event_space_entity"`);
    await queryRunner.query(
      `CREATE TABLE "temporary_webhook_event" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "linkedSpaceId" integer NOT NULL, "entityName" varchar(100) NOT NULL, "listenerEntityId" ${listenerEntityIdType} NOT NULL, "entityId" varchar(191) NOT NULL, "state" varchar(100), "createdOn" datetime NOT NULL DEFAULT (datetime('now')))`,
    );
    await queryRunner.query(
      `INSERT INTO "temporary_webhook_event"("id", "linkedSpaceId", "entityName", "listenerEntityId", "entityId", "state", "createdOn") SELECT "id", "linkedSpaceId", "entityName", "listenerEntityId", "entityId", "state", "createdOn" FROM "webhook_event"`,
    );
    await queryRunner.query(`DROP TABLE "webhook_event"`);
    await queryRunner.query(`ALTER TABLE "temporary_webhook_event" RENAME TO "webhook_event"`);
    await queryRunner.query(
      `CREATE INDEX "IDX_webhook_event_space_entity" ON "webhook_event" ("linkedSpaceId", "entityName", "entityId") `,
    );
  });
}
