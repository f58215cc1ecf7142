import type { MigrationInterface, QueryRunner } from 'typeorm';
import { keepingIdSequence } from './id-sequence.js';

export class WebhookDeliverySqlite1795798299800 implements MigrationInterface {
  name = 'WebhookDeliverySqlite1795798299800';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "webhook_delivery_attempt" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "deliveryId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "listenerId" integer NOT NULL, "attemptNumber" integer NOT NULL, "startedAt" bigint NOT NULL, "durationMs" integer NOT NULL, "outcome" varchar(16) NOT NULL, "statusCode" integer, "responseBody" text, "error" varchar(500))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_attempt_delivery" ON "webhook_delivery_attempt" ("deliveryId") `);
    await keepingIdSequence(queryRunner, 'webhook_identity', async () => {
      await queryRunner.query(`DROP INDEX "IDX_webhook_identity_key_id"`);
      await queryRunner.query(
        `CREATE TABLE "temporary_webhook_identity" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "linkedSpaceId" integer NOT NULL, "name" varchar(50) NOT NULL, "state" varchar(16) NOT NULL, "plannedPurgeDate" datetime, "version" integer NOT NULL, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), "updatedOn" datetime NOT NULL DEFAULT (datetime('now')), "keyId" varchar(36) NOT NULL, "publicKey" text NOT NULL, "privateKey" text NOT NULL, "secret" text NOT NULL, "spaceDefault" boolean NOT NULL DEFAULT (0))`,
      );
      await queryRunner.query(
        `INSERT INTO "temporary_webhook_identity"("id", "linkedSpaceId", "name", "state", "plannedPurgeDate", "version", "createdOn", "updatedOn", "keyId", "publicKey", "privateKey", "secret") SELECT "id", "linkedSpaceId", "name", "state", "plannedPurgeDate", "version", "createdOn", "updatedOn", "keyId", "publicKey", "privateKey", "secret" FROM "webhook_identity"`,
      );
      await queryRunner.query(`DROP TABLE "webhook_identity"`);
      await queryRunner.query(`ALTER TABLE "temporary_webhook_identity" RENAME TO "webhook_identity"`);
      await queryRunner.query(`CREATE UNIQUE INDEX "IDX_webhook_identity_key_id" ON "webhook_identity" ("keyId") `);
    });
    await keepingIdSequence(queryRunner, 'webhook_delivery', async () => {
      await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_due"`);
      await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_listener"`);
      await queryRunner.query(
        `CREATE TABLE "temporary_webhook_delivery" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "eventId" integer NOT NULL, "listenerId" integer NOT NULL, "urlId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "state" varchar(16) NOT NULL, "attempts" integer NOT NULL DEFAULT (0), "nextAttemptAt" bigint NOT NULL, "leaseOwner" varchar(64), "leaseUntil" bigint, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), "completedAt" bigint, CONSTRAINT "FK_webhook_delivery_listener" FOREIGN KEY ("listenerId") REFERENCES "webhook_listener" ("id") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT "FK_webhook_delivery_event" FOREIGN KEY ("eventId") REFERENCES "webhook_event" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)`,
      );
      await queryRunner.query(
        `INSERT INTO "temporary_webhook_delivery"("id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn") SELECT "id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn" FROM "webhook_delivery"`,
      );
      await queryRunner.query(`DROP TABLE "webhook_delivery"`);
      await queryRunner.query(`ALTER TABLE "temporary_webhook_delivery" RENAME TO "webhook_delivery"`);
      await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_due" ON "webhook_delivery" ("state", "nextAttemptAt") `);
      await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_listener" ON "webhook_delivery" ("listenerId", "state") `);
    });
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_attempt_delivery"`);
    await queryRunner.query(
      `CREATE TABLE "temporary_webhook_delivery_attempt" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "deliveryId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "listenerId" integer NOT NULL, "attemptNumber" integer NOT NULL, "startedAt" bigint NOT NULL, "durationMs" integer NOT NULL, "outcome" varchar(16) NOT NULL, "statusCode" integer, "responseBody" text, "error" varchar(500), CONSTRAINT "FK_webhook_delivery_attempt_delivery" FOREIGN KEY ("deliveryId") REFERENCES "webhook_delivery" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)`,
    );
    await queryRunner.query(
      `INSERT INTO "temporary_webhook_delivery_attempt"("id", "deliveryId", "linkedSpaceId", "listenerId", "attemptNumber", "startedAt", "durationMs", "outcome", "statusCode", "responseBody", "error") SELECT "id", "deliveryId", "linkedSpaceId", "listenerId", "attemptNumber", "startedAt", "durationMs", "outcome", "statusCode", "responseBody", "error" FROM "webhook_delivery_attempt"`,
    );
    await queryRunner.query(`DROP TABLE "webhook_delivery_attempt"`);
    await queryRunner.query(`ALTER TABLE "temporary_webhook_delivery_attempt" RENAME TO "webhook_delivery_attempt"`);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_attempt_delivery" ON "webhook_delivery_attempt" ("deliveryId") `);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_attempt_delivery"`);
    await queryRunner.query(`ALTER TABLE "webhook_delivery_attempt" RENAME TO "temporary_webhook_delivery_attempt"`);
    await queryRunner.query(
      `CREATE TABLE "webhook_delivery_attempt" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "deliveryId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "listenerId" integer NOT NULL, "attemptNumber" integer NOT NULL, "startedAt" bigint NOT NULL, "durationMs" integer NOT NULL, "outcome" varchar(16) NOT NULL, "statusCode" integer, "responseBody" text, "error" varchar(500))`,
    );
    await queryRunner.query(
      `INSERT INTO "webhook_delivery_attempt"("id", "deliveryId", "linkedSpaceId", "listenerId", "attemptNumber", "startedAt", "durationMs", "outcome", "statusCode", "responseBody", "error") SELECT "id", "deliveryId", "linkedSpaceId", "listenerId", "attemptNumber", "startedAt", "durationMs", "outcome", "statusCode", "responseBody", "error" FROM "temporary_webhook_delivery_attempt"`,
    );
    await queryRunner.query(`DROP TABLE "temporary_webhook_delivery_attempt"`);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_attempt_delivery" ON "webhook_delivery_attempt" ("deliveryId") `);
    await keepingIdSequence(queryRunner, 'webhook_delivery', async () => {
      await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_listener"`);
      await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_due"`);
      await queryRunner.query(`ALTER TABLE "webhook_delivery" RENAME TO "temporary_webhook_delivery"`);
      await queryRunner.query(
        `CREATE TABLE "webhook_delivery" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "eventId" integer NOT NULL, "listenerId" integer NOT NULL, "urlId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "state" varchar(16) NOT NULL, "attempts" integer NOT NULL DEFAULT (0), "nextAttemptAt" bigint NOT NULL, "leaseOwner" varchar(64), "leaseUntil" bigint, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), CONSTRAINT "FK_webhook_delivery_listener" FOREIGN KEY ("listenerId") REFERENCES "webhook_listener" ("id") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT "FK_webhook_delivery_event" FOREIGN KEY ("eventId") REFERENCES "webhook_event" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)`,
      );
      await queryRunner.query(
        `INSERT INTO "webhook_delivery"("id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn") SELECT "id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn" FROM "temporary_webhook_delivery"`,
      );
      await queryRunner.query(`DROP TABLE "temporary_webhook_delivery"`);
      await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_listener" ON "webhook_delivery" ("listenerId", "state") `);
      await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_due" ON "webhook_delivery" ("state", "nextAttemptAt") `);
    });
    // Dropped in place, not by copying the table: the listeners' foreign key refers to it, and TypeORM
    // undoes a migration in a transaction, inside which SQLite keeps foreign keys checked.
    await queryRunner.query(`ALTER TABLE "webhook_identity" DROP COLUMN "spaceDefault"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_attempt_delivery"`);
    await queryRunner.query(`DROP TABLE "webhook_delivery_attempt"`);
  }
}
