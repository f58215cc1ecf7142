import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookIdentityRotationSqlite1795817866041 implements MigrationInterface {
  name = 'WebhookIdentityRotationSqlite1795817866041';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "webhook_retired_key" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "identityId" integer NOT NULL, "keyId" varchar(36) NOT NULL, "publicKey" text NOT NULL, "secret" text NOT NULL, "retiredAt" bigint NOT NULL, "signsUntil" bigint NOT NULL)`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_webhook_retired_key_identity" ON "webhook_retired_key" ("identityId") `);
    await queryRunner.query(`CREATE UNIQUE INDEX "IDX_webhook_retired_key_key_id" ON "webhook_retired_key" ("keyId") `);
    await queryRunner.query(`DROP INDEX "IDX_webhook_retired_key_identity"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_retired_key_key_id"`);
    await queryRunner.query(
      `CREATE TABLE "temporary_webhook_retired_key" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "identityId" integer NOT NULL, "keyId" varchar(36) NOT NULL, "publicKey" text NOT NULL, "secret" text NOT NULL, "retiredAt" bigint NOT NULL, "signsUntil" bigint NOT NULL, CONSTRAINT "FK_webhook_retired_key_identity" FOREIGN KEY ("identityId") REFERENCES "webhook_identity" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)`,
    );
    await queryRunner.query(
      `INSERT INTO "temporary_webhook_retired_key"("id", "identityId", "keyId", "publicKey", "secret", "retiredAt", "signsUntil") SELECT "id", "identityId", "keyId", "publicKey", "secret", "retiredAt", "signsUntil" FROM "webhook_retired_key"`,
    );
    await queryRunner.query(`DROP TABLE "webhook_retired_key"`);
    await queryRunner.query(`ALTER TABLE "temporary_webhook_retired_key" RENAME TO "webhook_retired_key"`);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_retired_key_identity" ON "webhook_retired_key" ("identityId") `);
    await queryRunner.query(`CREATE UNIQUE INDEX "IDX_webhook_retired_key_key_id" ON "webhook_retired_key" ("keyId") `);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "IDX_webhook_retired_key_key_id"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_retired_key_identity"`);
    await queryRunner.query(`ALTER TABLE "webhook_retired_key" RENAME TO "temporary_webhook_retired_key"`);
    await queryRunner.query(
      `CREATE TABLE "webhook_retired_key" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "identityId" integer NOT NULL, "keyId" varchar(36) NOT NULL, "publicKey" text NOT NULL, "secret" text NOT NULL, "retiredAt" bigint NOT NULL, "signsUntil" bigint NOT NULL)`,
    );
    await queryRunner.query(
      `INSERT INTO "webhook_retired_key"("id", "identityId", "keyId", "publicKey", "secret", "retiredAt", "signsUntil") SELECT "id", "identityId", "keyId", "publicKey", "secret", "retiredAt", "signsUntil" FROM "temporary_webhook_retired_key"`,
    );
    await queryRunner.query(`DROP TABLE "temporary_webhook_retired_key"`);
    await queryRunner.query(`CREATE UNIQUE INDEX "IDX_webhook_retired_key_key_id" ON "webhook_retired_key" ("keyId") `);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_retired_key_identity" ON "webhook_retired_key" ("identityId") `);
    await queryRunner.query(`DROP INDEX "IDX_webhook_retired_key_key_id"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_retired_key_identity"`);
    await queryRunner.query(`DROP TABLE "webhook_retired_key"`);
  }
}
