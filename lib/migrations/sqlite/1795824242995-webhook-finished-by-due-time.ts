import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookFinishedByDueTimeSqlite1795824242995 implements MigrationInterface {
  name = 'WebhookFinishedByDueTimeSqlite1795824242995';

  async up(queryRunner: QueryRunner): Promise<void> {
    // Finished deliveries are found by their due time from now on: it must be when they finished.
    await queryRunner.query(
      `UPDATE "webhook_delivery" SET "nextAttemptAt" = "completedAt" WHERE "completedAt" IS NOT NULL AND "state" <> 'PENDING'`,
    );
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_completed"`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_completed" ON "webhook_delivery" ("state", "completedAt") `);
  }
}
