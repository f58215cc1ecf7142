import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookHotPathForeignKeysMysql1795819371130 implements MigrationInterface {
  name = 'WebhookHotPathForeignKeysMysql1795819371130';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE \`webhook_delivery\` DROP FOREIGN KEY \`FK_webhook_delivery_event\``);
    await queryRunner.query(`ALTER TABLE \`webhook_delivery_attempt\` DROP FOREIGN KEY \`FK_webhook_delivery_attempt_delivery\``);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE \`webhook_delivery_attempt\` ADD CONSTRAINT \`FK_webhook_delivery_attempt_delivery\` FOREIGN KEY (\`deliveryId\`) REFERENCES \`webhook_delivery\`(\`id\`) ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE \`webhook_delivery\` ADD CONSTRAINT \`FK_webhook_delivery_event\` FOREIGN KEY (\`eventId\`) REFERENCES \`webhook_event\`(\`id\`) ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }
}
