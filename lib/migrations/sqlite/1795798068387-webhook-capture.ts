import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookCaptureSqlite1795798068387 implements MigrationInterface {
  name = 'WebhookCaptureSqlite1795798068387';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "webhook_event" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "linkedSpaceId" integer NOT NULL, "entityName" varchar(100) NOT NULL, "listenerEntityId" integer NOT NULL, "entityId" varchar(191) NOT NULL, "state" varchar(100), "createdOn" datetime NOT NULL DEFAULT (datetime('now')))`,
    );
    await queryRunner.query(
      `CREATE INDEX "IDX_webhook_event_space_entity" ON "webhook_event" ("linkedSpaceId", "entityName", "entityId") `,
    );
    await queryRunner.query(
      `CREATE TABLE "webhook_delivery" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "eventId" integer NOT NULL, "listenerId" integer NOT NULL, "urlId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "state" varchar(16) NOT NULL, "attempts" integer NOT NULL DEFAULT (0), "nextAttemptAt" bigint NOT NULL, "leaseOwner" varchar(64), "leaseUntil" bigint, "createdOn" datetime NOT NULL DEFAULT (datetime('now')))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_listener" ON "webhook_delivery" ("listenerId", "state") `);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_due" ON "webhook_delivery" ("state", "nextAttemptAt") `);
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_listener"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_due"`);
    await queryRunner.query(
      `CREATE TABLE "temporary_webhook_delivery" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "eventId" integer NOT NULL, "listenerId" integer NOT NULL, "urlId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "state" varchar(16) NOT NULL, "attempts" integer NOT NULL DEFAULT (0), "nextAttemptAt" bigint NOT NULL, "leaseOwner" varchar(64), "leaseUntil" bigint, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), CONSTRAINT "FK_webhook_delivery_event" FOREIGN KEY ("eventId") REFERENCES "webhook_event" ("id") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT "FK_webhook_delivery_listener" FOREIGN KEY ("listenerId") REFERENCES "webhook_listener" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)`,
    );
    await queryRunner.query(
      `INSERT INTO "temporary_webhook_delivery"("id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn") SELECT "id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn" FROM "webhook_delivery"`,
    );
    await queryRunner.query(`DROP TABLE "webhook_delivery"`);
    await queryRunner.query(`ALTER TABLE "temporary_webhook_delivery" RENAME TO "webhook_delivery"`);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_listener" ON "webhook_delivery" ("listenerId", "state") `);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_due" ON "webhook_delivery" ("state", "nextAttemptAt") `);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_due"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_listener"`);
    await queryRunner.query(`ALTER TABLE "webhook_delivery" RENAME TO "temporary_webhook_delivery"`);
    await queryRunner.query(
      `CREATE TABLE "webhook_delivery" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "eventId" integer NOT NULL, "listenerId" integer NOT NULL, "urlId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "state" varchar(16) NOT NULL, "attempts" integer NOT NULL DEFAULT (0), "nextAttemptAt" bigint NOT NULL, "leaseOwner" varchar(64), "leaseUntil" bigint, "createdOn" datetime NOT NULL DEFAULT (datetime('now')))`,
    );
    await queryRunner.query(
      `INSERT INTO "webhook_delivery"("id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn") SELECT "id", "eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "leaseOwner", "leaseUntil", "createdOn" FROM "temporary_webhook_delivery"`,
    );
    await queryRunner.query(`DROP TABLE "temporary_webhook_delivery"`);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_due" ON "webhook_delivery" ("state", "nextAttemptAt") `);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_listener" ON "webhook_delivery" ("listenerId", "state") `);
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_due"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_listener"`);
    await queryRunner.query(`DROP TABLE "webhook_delivery"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_event_space_entity"`);
    await queryRunner.query(`DROP TABLE "webhook_event"`);
  }
}
