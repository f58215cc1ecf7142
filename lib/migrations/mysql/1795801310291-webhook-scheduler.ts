import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookSchedulerMysql1795801310291 implements MigrationInterface {
  name = 'WebhookSchedulerMysql1795801310291';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE INDEX \`IDX_webhook_delivery_completed\` ON \`webhook_delivery\` (\`state\`, \`completedAt\`)`);
    await queryRunner.query(`CREATE INDEX \`IDX_webhook_delivery_event\` ON \`webhook_delivery\` (\`eventId\`)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    // MySQL keeps an index under a foreign key: the key goes while its index is dropped, and comes back with its own.
    await queryRunner.query(`DROP INDEX \`IDX_webhook_delivery_completed\` ON \`webhook_delivery\``);
    await queryRunner.query(`ALTER TABLE \`webhook_delivery\` DROP FOREIGN KEY \`FK_webhook_delivery_event\``);
    await queryRunner.query(`DROP INDEX \`IDX_webhook_delivery_event\` ON \`webhook_delivery\``);
    await queryRunner.query(
      `ALTER TABLE \`webhook_delivery\` ADD CONSTRAINT \`FK_webhook_delivery_event\` FOREIGN KEY (\`eventId\`) REFERENCES \`webhook_event\`(\`id\`) ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }
}
