import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookDeliveryPostgres1795798299800 implements MigrationInterface {
  name = 'WebhookDeliveryPostgres1795798299800';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "webhook_delivery_attempt" ("id" SERIAL NOT NULL, "deliveryId" integer NOT NULL, "linkedSpaceId" integer NOT NULL, "listenerId" integer NOT NULL, "attemptNumber" integer NOT NULL, "startedAt" bigint NOT NULL, "durationMs" integer NOT NULL, "outcome" character varying(16) NOT NULL, "statusCode" integer, "responseBody" text, "error" character varying(500), CONSTRAINT "PK_e6efad829bd07e78a18fd0ad5d5" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_attempt_delivery" ON "webhook_delivery_attempt"  ("deliveryId") `);
    await queryRunner.query(`ALTER TABLE "webhook_identity" ADD "spaceDefault" boolean NOT NULL DEFAULT false`);
    await queryRunner.query(`ALTER TABLE "webhook_delivery" ADD "completedAt" bigint`);
    await queryRunner.query(
      `ALTER TABLE "webhook_delivery_attempt" ADD CONSTRAINT "FK_webhook_delivery_attempt_delivery" FOREIGN KEY ("deliveryId") REFERENCES "webhook_delivery"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "webhook_delivery_attempt" DROP CONSTRAINT "FK_webhook_delivery_attempt_delivery"`);
    await queryRunner.query(`ALTER TABLE "webhook_delivery" DROP COLUMN "completedAt"`);
    await queryRunner.query(`ALTER TABLE "webhook_identity" DROP COLUMN "spaceDefault"`);
    await queryRunner.query(`DROP INDEX "public"."IDX_webhook_delivery_attempt_delivery"`);
    await queryRunner.query(`DROP TABLE "webhook_delivery_attempt"`);
  }
}
