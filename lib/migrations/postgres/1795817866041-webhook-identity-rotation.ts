import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookIdentityRotationPostgres1795817866041 implements MigrationInterface {
  name = 'WebhookIdentityRotationPostgres1795817866041';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "webhook_retired_key" ("id" SERIAL NOT NULL, "identityId" integer NOT NULL, "keyId" character varying(36) NOT NULL, "publicKey" text NOT NULL, "secret" text NOT NULL, "retiredAt" bigint NOT NULL, "signsUntil" bigint NOT NULL, CONSTRAINT "PK_74c0006bf5a1b23a353ac8b2a90" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_webhook_retired_key_identity" ON "webhook_retired_key"  ("identityId") `);
    await queryRunner.query(`CREATE UNIQUE INDEX "IDX_webhook_retired_key_key_id" ON "webhook_retired_key"  ("keyId") `);
    await queryRunner.query(
      `ALTER TABLE "webhook_retired_key" ADD CONSTRAINT "FK_webhook_retired_key_identity" FOREIGN KEY ("identityId") REFERENCES "webhook_identity"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "webhook_retired_key" DROP CONSTRAINT "FK_webhook_retired_key_identity"`);
    await queryRunner.query(`DROP INDEX "public"."IDX_webhook_retired_key_key_id"`);
    await queryRunner.query(`DROP INDEX "public"."IDX_webhook_retired_key_identity"`);
    await queryRunner.query(`DROP TABLE "webhook_retired_key"`);
  }
}
