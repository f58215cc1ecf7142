import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Events keep when they were recorded in epoch ms (`occurredAt`), which the payload's timestamp is
 * made from: a date without time zone cannot tell apart the hours a clock set back repeats.
 */
export class WebhookEventOccurredAtSqlite1796631050506 implements MigrationInterface {
  name = 'WebhookEventOccurredAtSqlite1796631050506';

  async up(queryRunner: QueryRunner): Promise<void> {
    // A column added at the end needs no copy of the table.
    await queryRunner.query(`ALTER TABLE "webhook_event" ADD COLUMN "occurredAt" bigint`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "webhook_event" DROP COLUMN "occurredAt"`);
  }
}
