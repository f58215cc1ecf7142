import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookInitialPostgres1795796132963 implements MigrationInterface {
  name = 'WebhookInitialPostgres1795796132963';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "webhook_identity" ("id" SERIAL NOT NULL, "linkedSpaceId" integer NOT NULL, "name" character varying(50) NOT NULL, "state" character varying(16) NOT NULL, "plannedPurgeDate" TIMESTAMP, "version" integer NOT NULL, "createdOn" TIMESTAMP NOT NULL DEFAULT now(), "updatedOn" TIMESTAMP NOT NULL DEFAULT now(), "keyId" character varying(36) NOT NULL, "publicKey" text NOT NULL, "privateKey" text NOT NULL, "secret" text NOT NULL, CONSTRAINT "PK_4ff5341e77762cd2de1c0ddf141" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE UNIQUE INDEX "IDX_webhook_identity_key_id" ON "webhook_identity"  ("keyId") `);
    await queryRunner.query(
      `CREATE TABLE "webhook_url" ("id" SERIAL NOT NULL, "linkedSpaceId" integer NOT NULL, "name" character varying(50) NOT NULL, "state" character varying(16) NOT NULL, "plannedPurgeDate" TIMESTAMP, "version" integer NOT NULL, "createdOn" TIMESTAMP NOT NULL DEFAULT now(), "updatedOn" TIMESTAMP NOT NULL DEFAULT now(), "url" character varying(500) NOT NULL, "applicationManaged" boolean NOT NULL DEFAULT false, CONSTRAINT "PK_9ef82f2e8e0c8cd3981a1179a8f" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_webhook_url_space_url" ON "webhook_url"  ("linkedSpaceId", "url") `);
    await queryRunner.query(
      `CREATE TABLE "webhook_listener" ("id" SERIAL NOT NULL, "linkedSpaceId" integer NOT NULL, "name" character varying(50) NOT NULL, "state" character varying(16) NOT NULL, "plannedPurgeDate" TIMESTAMP, "version" integer NOT NULL, "createdOn" TIMESTAMP NOT NULL DEFAULT now(), "updatedOn" TIMESTAMP NOT NULL DEFAULT now(), "entity" character varying(100) NOT NULL, "entityStates" text NOT NULL, "notifyEveryChange" boolean NOT NULL DEFAULT false, "enablePayloadSignatureAndState" boolean NOT NULL DEFAULT true, "identityId" integer, "urlId" integer NOT NULL, CONSTRAINT "PK_17ebc1d492f2a9423ec5a667987" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(
      `CREATE INDEX "IDX_webhook_listener_space_entity_state" ON "webhook_listener"  ("linkedSpaceId", "entity", "state") `,
    );
    await queryRunner.query(
      `ALTER TABLE "webhook_listener" ADD CONSTRAINT "FK_webhook_listener_identity" FOREIGN KEY ("identityId") REFERENCES "webhook_identity"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "webhook_listener" ADD CONSTRAINT "FK_webhook_listener_url" FOREIGN KEY ("urlId") REFERENCES "webhook_url"("id") ON DELETE RESTRICT ON UPDATE NO ACTION`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "webhook_listener" DROP CONSTRAINT "FK_webhook_listener_url"`);
    await queryRunner.query(`ALTER TABLE "webhook_listener" DROP CONSTRAINT "FK_webhook_listener_identity"`);
    await queryRunner.query(`DROP INDEX "public"."IDX_webhook_listener_space_entity_state"`);
    await queryRunner.query(`DROP TABLE "webhook_listener"`);
    await queryRunner.query(`DROP INDEX "public"."IDX_webhook_url_space_url"`);
    await queryRunner.query(`DROP TABLE "webhook_url"`);
    await queryRunner.query(`DROP INDEX "public"."IDX_webhook_identity_key_id"`);
    await queryRunner.query(`DROP TABLE "webhook_identity"`);
  }
}
