import type { MigrationInterface, QueryRunner } from 'typeorm';
import { keepingIdSequence } from './id-sequence.js';

export class WebhookDeliveryListenerUncheckedSqlite1795862455698 implements MigrationInterface {
  name = 'WebhookDeliveryListenerUncheckedSqlite1795862455698';

  async up(queryRunner: QueryRunner): Promise<void> {
    await keepingIdSequence(queryRunner, 'webhook_delivery', async () => {
      await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_due"`);
      await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_listener"`);
      await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_event"`);
      await queryRunner.query(
        `CREATE TABLE "temporary_webhook_delivery" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "eventId" integer NOT NULL, "listenerId" integer NOT NULL, "urlId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "state" varchar(16) NOT NULL, "attempts" integer NOT NULL DEFAULT (0), "nextAttemptAt" bigint NOT NULL, "leaseOwner" varchar(64), "leaseUntil" bigint, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), "completedAt" bigint)`,
      );
      await queryRunner.query(
        `INSERT INTO "temporary_webhook_delivery"("id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn", "completedAt") SELECT "id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn", "completedAt" FROM "webhook_delivery"`,
      );
      await queryRunner.query(`DROP TABLE "webhook_delivery"`);
      await queryRunner.query(`ALTER TABLE "temporary_webhook_delivery" RENAME TO "webhook_delivery"`);
      await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_due" ON "webhook_delivery" ("state", "nextAttemptAt") `);
      await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_listener" ON "webhook_delivery" ("listenerId", "state") `);
      await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_event" ON "webhook_delivery" ("eventId") `);
    });
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await keepingIdSequence(queryRunner, 'webhook_delivery', async () => {
      await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_event"`);
      await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_listener"`);
      await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_due"`);
      await queryRunner.query(`ALTER TABLE "webhook_delivery" RENAME TO "temporary_webhook_delivery"`);
      await queryRunner.query(
        `CREATE TABLE "webhook_delivery" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "eventId" integer NOT NULL, "listenerId" integer NOT NULL, "urlId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "state" varchar(16) NOT NULL, "attempts" integer NOT NULL DEFAULT (0), "nextAttemptAt" bigint NOT NULL, "leaseOwner" varchar(64), "leaseUntil" bigint, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), "completedAt" bigint, CONSTRAINT "FK_webhook_delivery_listener" FOREIGN KEY ("listenerId") REFERENCES "webhook_listener" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)`,
      );
      await queryRunner.query(
        `INSERT INTO "webhook_delivery"("id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn", "completedAt") SELECT "id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn", "completedAt" FROM "temporary_webhook_delivery"`,
      );
      await queryRunner.query(`DROP TABLE "temporary_webhook_delivery"`);
      await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_event" ON "webhook_delivery" ("eventId") `);
      await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_listener" ON "webhook_delivery" ("listenerId", "state") `);
      await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_due" ON "webhook_delivery" ("state", "nextAttemptAt") `);
    });
  }
}
