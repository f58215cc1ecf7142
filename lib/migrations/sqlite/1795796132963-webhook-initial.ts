import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookInitialSqlite1795796132963 implements MigrationInterface {
  name = 'WebhookInitialSqlite1795796132963';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "webhook_identity" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "linkedSpaceId" integer NOT NULL, "name" varchar(50) NOT NULL, "state" varchar(16) NOT NULL, "plannedPurgeDate" datetime, "version" integer NOT NULL, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), "updatedOn" datetime NOT NULL DEFAULT (datetime('now')), "keyId" varchar(36) NOT NULL, "publicKey" text NOT NULL, "privateKey" text NOT NULL, "secret" text NOT NULL)`,
    );
    await queryRunner.query(`CREATE UNIQUE INDEX "IDX_webhook_identity_key_id" ON "webhook_identity" ("keyId") `);
    await queryRunner.query(
      `CREATE TABLE "webhook_url" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "linkedSpaceId" integer NOT NULL, "name" varchar(50) NOT NULL, "state" varchar(16) NOT NULL, "plannedPurgeDate" datetime, "version" integer NOT NULL, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), "updatedOn" datetime NOT NULL DEFAULT (datetime('now')), "url" varchar(500) NOT NULL, "applicationManaged" boolean NOT NULL DEFAULT (0))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_webhook_url_space_url" ON "webhook_url" ("linkedSpaceId", "url") `);
    await queryRunner.query(
      `CREATE TABLE "webhook_listener" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "linkedSpaceId" integer NOT NULL, "name" varchar(50) NOT NULL, "state" varchar(16) NOT NULL, "plannedPurgeDate" datetime, "version" integer NOT NULL, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), "updatedOn" datetime NOT NULL DEFAULT (datetime('now')), "entity" varchar(100) NOT NULL, "entityStates" text NOT NULL, "notifyEveryChange" boolean NOT NULL DEFAULT (0), "enablePayloadSignatureAndState" boolean NOT NULL DEFAULT (1), "identityId" integer, "urlId" integer NOT NULL)`,
    );
    await queryRunner.query(
      `CREATE INDEX "IDX_webhook_listener_space_entity_state" ON "webhook_listener" ("linkedSpaceId", "entity", "state") `,
    );
    await queryRunner.query(`DROP INDEX "IDX_webhook_listener_space_entity_state"`);
    await queryRunner.query(
      `CREATE TABLE "temporary_webhook_listener" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "linkedSpaceId" integer NOT NULL, "name" varchar(50) NOT NULL, "state" varchar(16) NOT NULL, "plannedPurgeDate" datetime, "version" integer NOT NULL, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), "updatedOn" datetime NOT NULL DEFAULT (datetime('now')), "entity" varchar(100) NOT NULL, "entityStates" text NOT NULL, "notifyEveryChange" boolean NOT NULL DEFAULT (0), "enablePayloadSignatureAndState" boolean NOT NULL DEFAULT (1), "identityId" integer, "urlId" integer NOT NULL, CONSTRAINT "FK_webhook_listener_identity" FOREIGN KEY ("identityId") REFERENCES "webhook_identity" ("id") ON DELETE RESTRICT ON UPDATE NO ACTION, CONSTRAINT "FK_webhook_listener_url" FOREIGN KEY ("urlId") REFERENCES "webhook_url" ("id") ON DELETE RESTRICT ON UPDATE NO ACTION)`,
    );
    await queryRunner.query(
      `INSERT INTO "temporary_webhook_listener"("id", "linkedSpaceId", "name", "state", "plannedPurgeDate", "version", "createdOn", "updatedOn", "entity", "entityStates", "notifyEveryChange", "enablePayloadSignatureAndState", "identityId", "urlId") SELECT "id", "linkedSpaceId", "name", "state", "plannedPurgeDate", "version", "createdOn", "updatedOn", "entity", "entityStates", "notifyEveryChange", "enablePayloadSignatureAndState", "identityId", "urlId" FROM "webhook_listener"`,
    );
    await queryRunner.query(`DROP TABLE "webhook_listener"`);
    await queryRunner.query(`ALTER TABLE "temporary_webhook_listener" RENAME TO "webhook_listener"`);
    await queryRunner.query(
      `CREATE INDEX "IDX_webhook_listener_space_entity_state" ON "webhook_listener" ("linkedSpaceId", "entity", "state") `,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "IDX_webhook_listener_space_entity_state"`);
    await queryRunner.query(`ALTER TABLE "webhook_listener" RENAME TO "temporary_webhook_listener"`);
    await queryRunner.query(
      `CREATE TABLE "webhook_listener" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "linkedSpaceId" integer NOT NULL, "name" varchar(50) NOT NULL, "state" varchar(16) NOT NULL, "plannedPurgeDate" datetime, "version" integer NOT NULL, "createdOn" datetime NOT NULL DEFAULT (datetime('now')), "updatedOn" datetime NOT NULL DEFAULT (datetime('now')), "entity" varchar(100) NOT NULL, "entityStates" text NOT NULL, "notifyEveryChange" boolean NOT NULL DEFAULT (0), "enablePayloadSignatureAndState" boolean NOT NULL DEFAULT (1), "identityId" integer, "urlId" integer NOT NULL)`,
    );
    await queryRunner.query(
      `INSERT INTO "webhook_listener"("id", "linkedSpaceId", "name", "state", "plannedPurgeDate", "version", "createdOn", "updatedOn", "entity", "entityStates", "notifyEveryChange", "enablePayloadSignatureAndState", "identityId", "urlId") SELECT "id", "linkedSpaceId", "name", "state", "plannedPurgeDate", "version", "createdOn", "updatedOn", "entity", "entityStates", "notifyEveryChange", "enablePayloadSignatureAndState", "identityId", "urlId" FROM "temporary_webhook_listener"`,
    );
    await queryRunner.query(`DROP TABLE "temporary_webhook_listener"`);
    await queryRunner.query(
      `CREATE INDEX "IDX_webhook_listener_space_entity_state" ON "webhook_listener" ("linkedSpaceId", "entity", "state") `,
    );
    await queryRunner.query(`DROP INDEX "IDX_webhook_listener_space_entity_state"`);
    await queryRunner.query(`DROP TABLE "webhook_listener"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_url_space_url"`);
    await queryRunner.query(`DROP TABLE "webhook_url"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_identity_key_id"`);
    await queryRunner.query(`DROP TABLE "webhook_identity"`);
  }
}
