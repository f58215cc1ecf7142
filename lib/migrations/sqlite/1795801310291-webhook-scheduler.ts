import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookSchedulerSqlite1795801310291 implements MigrationInterface {
  name = 'WebhookSchedulerSqlite1795801310291';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_completed" ON "webhook_delivery" ("state", "completedAt") `);
    await queryRunner.query(`CREATE INDEX "IDX_webhook_delivery_event" ON "webhook_delivery" ("eventId") `);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_event"`);
    await queryRunner.query(`DROP INDEX "IDX_webhook_delivery_completed"`);
  }
}
