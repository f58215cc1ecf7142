import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookCapturePostgres1795798068387 implements MigrationInterface {
  name = 'WebhookCapturePostgres1795798068387';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "webhook_event" ("id" SERIAL NOT NULL, "linkedSpaceId" integer NOT NULL, "entityName" character varying(100) NOT NULL, "listenerEntityId" integer NOT NULL, "entityId" character varying(191) NOT NULL, "state" character varying(100), "createdOn" TIMESTAMP NOT NULL DEFAULT now(), CONSTRAINT "PK_0f56d2f40f5ec823acf8e8edad1" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(
      `CREATE INDEX "IDX_webhook_event_space_entity" ON "webhook_event"  ("linkedSpaceId", "entityName", "entityId") `,
    );
    await queryRunner.query(
      `CREATE TABLE "webhook_delivery" ("id" SERIAL NOT NULL, "eventId" integer NOT NULL, "listenerId" integer NOT NULL, "urlId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "state" character varying(16) NOT NULL, "attempts" integer NOT NULL DEFAULT '0', "nextAttemptAt" bigint NOT NULL, "leaseOwner" character varying(64), "leaseUntil" bigint, "createdOn" TIMESTAMP NOT NULL DEFAULT now(), CONSTRAINT "PK_b1ae290239a778f12399db91354" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_listener" ON "webhook_delivery"  ("listenerId", "state") `);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_due" ON "webhook_delivery"  ("state", "nextAttemptAt") `);
    await queryRunner.query(
      `ALTER TABLE "webhook_delivery" ADD CONSTRAINT "FK_webhook_delivery_event" FOREIGN KEY ("eventId") REFERENCES "webhook_event"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "webhook_delivery" ADD CONSTRAINT "FK_webhook_delivery_listener" FOREIGN KEY ("listenerId") REFERENCES "webhook_listener"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "webhook_delivery" DROP CONSTRAINT "FK_webhook_delivery_listener"`);
    await queryRunner.query(`ALTER TABLE "webhook_delivery" DROP CONSTRAINT "FK_webhook_delivery_event"`);
    await queryRunner.query(`DROP INDEX "public"."IDX_webhook_delivery_due"`);
    await queryRunner.query(`DROP INDEX "public"."IDX_webhook_delivery_listener"`);
    await queryRunner.query(`DROP TABLE "webhook_delivery"`);
    await queryRunner.query(`DROP INDEX "public"."IDX_webhook_event_space_entity"`);
    await queryRunner.query(`DROP TABLE "webhook_event"`);
  }
}
