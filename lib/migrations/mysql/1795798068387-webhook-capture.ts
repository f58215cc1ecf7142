import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookCaptureMysql1795798068387 implements MigrationInterface {
  name = 'WebhookCaptureMysql1795798068387';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE \`webhook_event\` (\`id\` int NOT NULL AUTO_INCREMENT, \`linkedSpaceId\` int NOT NULL, \`entityName\` varchar(100) NOT NULL, \`listenerEntityId\` int NOT NULL, \`entityId\` varchar(191) NOT NULL, \`state\` varchar(100) NULL, \`createdOn\` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), INDEX \`IDX_webhook_event_space_entity\` (\`linkedSpaceId\`, \`entityName\`, \`entityId\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await queryRunner.query(
      `CREATE TABLE \`webhook_delivery\` (\`id\` int NOT NULL AUTO_INCREMENT, \`eventId\` int NOT NULL, \`listenerId\` int NOT NULL, \`urlId\` int NOT NULL, \`linkedSpaceId\` int NOT NULL, \`state\` varchar(16) NOT NULL, \`attempts\` int NOT NULL DEFAULT '0', \`nextAttemptAt\` bigint NOT NULL, \`leaseOwner\` varchar(64) NULL, \`leaseUntil\` bigint NULL, \`createdOn\` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), INDEX \`IDX_webhook_delivery_listener\` (\`listenerId\`, \`state\`), INDEX \`IDX_webhook_delivery_due\` (\`state\`, \`nextAttemptAt\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await queryRunner.query(
      `ALTER TABLE \`webhook_delivery\` ADD CONSTRAINT \`FK_webhook_delivery_event\` FOREIGN KEY (\`eventId\`) REFERENCES \`webhook_event\`(\`id\`) ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE \`webhook_delivery\` ADD CONSTRAINT \`FK_webhook_delivery_listener\` FOREIGN KEY (\`listenerId\`) REFERENCES \`webhook_listener\`(\`id\`) ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE \`webhook_delivery\` DROP FOREIGN KEY \`FK_webhook_delivery_listener\``);
    await queryRunner.query(`ALTER TABLE \`webhook_delivery\` DROP FOREIGN KEY \`FK_webhook_delivery_event\``);
    await queryRunner.query(`DROP INDEX \`IDX_webhook_delivery_due\` ON \`webhook_delivery\``);
    await queryRunner.query(`DROP INDEX \`IDX_webhook_delivery_listener\` ON \`webhook_delivery\``);
    await queryRunner.query(`DROP TABLE \`webhook_delivery\``);
    await queryRunner.query(`DROP INDEX \`IDX_webhook_event_space_entity\` ON \`webhook_event\``);
    await queryRunner.query(`DROP TABLE \`webhook_event\``);
  }
}
