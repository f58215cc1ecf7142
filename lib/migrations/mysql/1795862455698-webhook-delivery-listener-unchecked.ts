import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookDeliveryListenerUncheckedMysql1795862455698 implements MigrationInterface {
  name = 'WebhookDeliveryListenerUncheckedMysql1795862455698';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE \`webhook_delivery\` DROP FOREIGN KEY \`FK_webhook_delivery_listener\``);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `ALTER TABLE \`webhook_delivery\` ADD CONSTRAINT \`FK_webhook_delivery_listener\` FOREIGN KEY (\`listenerId\`) REFERENCES \`webhook_listener\`(\`id\`) ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }
}
