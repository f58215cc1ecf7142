import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookDeliveryMysql1795798299800 implements MigrationInterface {
  name = 'WebhookDeliveryMysql1795798299800';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE \`webhook_delivery_attempt\` (\`id\` int NOT NULL AUTO_INCREMENT, \`deliveryId\` int NOT NULL, \`linkedSpaceId\` int NOT NULL, \`listenerId\` int NOT NULL, \`attemptNumber\` int NOT NULL, \`startedAt\` bigint NOT NULL, \`durationMs\` int NOT NULL, \`outcome\` varchar(16) NOT NULL, \`statusCode\` int NULL, \`responseBody\` text NULL, \`error\` varchar(500) NULL, INDEX \`IDX_webhook_delivery_attempt_delivery\` (\`deliveryId\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await queryRunner.query(`ALTER TABLE \`webhook_identity\` ADD \`spaceDefault\` tinyint NOT NULL DEFAULT 0`);
    await queryRunner.query(`ALTER TABLE \`webhook_delivery\` ADD \`completedAt\` bigint NULL`);
    await queryRunner.query(
      `ALTER TABLE \`webhook_delivery_attempt\` ADD CONSTRAINT \`FK_webhook_delivery_attempt_delivery\` FOREIGN KEY (\`deliveryId\`) REFERENCES \`webhook_delivery\`(\`id\`) ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE \`webhook_delivery_attempt\` DROP FOREIGN KEY \`FK_webhook_delivery_attempt_delivery\``);
    await queryRunner.query(`ALTER TABLE \`webhook_delivery\` DROP COLUMN \`completedAt\``);
    await queryRunner.query(`ALTER TABLE \`webhook_identity\` DROP COLUMN \`spaceDefault\``);
    await queryRunner.query(`DROP INDEX \`IDX_webhook_delivery_attempt_delivery\` ON \`webhook_delivery_attempt\``);
    await queryRunner.query(`DROP TABLE \`webhook_delivery_attempt\``);
  }
}
