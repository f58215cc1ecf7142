import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookInitialMysql1795796132963 implements MigrationInterface {
  name = 'WebhookInitialMysql1795796132963';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE \`webhook_identity\` (\`id\` int NOT NULL AUTO_INCREMENT, \`linkedSpaceId\` int NOT NULL, \`name\` varchar(50) NOT NULL, \`state\` varchar(16) NOT NULL, \`plannedPurgeDate\` datetime NULL, \`version\` int NOT NULL, \`createdOn\` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \`updatedOn\` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \`keyId\` varchar(36) NOT NULL, \`publicKey\` text NOT NULL, \`privateKey\` text NOT NULL, \`secret\` text NOT NULL, UNIQUE INDEX \`IDX_webhook_identity_key_id\` (\`keyId\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await queryRunner.query(
      `CREATE TABLE \`webhook_url\` (\`id\` int NOT NULL AUTO_INCREMENT, \`linkedSpaceId\` int NOT NULL, \`name\` varchar(50) NOT NULL, \`state\` varchar(16) NOT NULL, \`plannedPurgeDate\` datetime NULL, \`version\` int NOT NULL, \`createdOn\` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \`updatedOn\` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \`url\` varchar(500) NOT NULL, \`applicationManaged\` tinyint NOT NULL DEFAULT 0, INDEX \`IDX_webhook_url_space_url\` (\`linkedSpaceId\`, \`url\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await queryRunner.query(
      `CREATE TABLE \`webhook_listener\` (\`id\` int NOT NULL AUTO_INCREMENT, \`linkedSpaceId\` int NOT NULL, \`name\` varchar(50) NOT NULL, \`state\` varchar(16) NOT NULL, \`plannedPurgeDate\` datetime NULL, \`version\` int NOT NULL, \`createdOn\` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \`updatedOn\` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \`entity\` varchar(100) NOT NULL, \`entityStates\` text NOT NULL, \`notifyEveryChange\` tinyint NOT NULL DEFAULT 0, \`enablePayloadSignatureAndState\` tinyint NOT NULL DEFAULT 1, \`identityId\` int NULL, \`urlId\` int NOT NULL, INDEX \`IDX_webhook_listener_space_entity_state\` (\`linkedSpaceId\`, \`entity\`, \`state\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await queryRunner.query(
      `ALTER TABLE \`webhook_listener\` ADD CONSTRAINT \`FK_webhook_listener_identity\` FOREIGN KEY (\`identityId\`) REFERENCES \`webhook_identity\`(\`id\`) ON DELETE RESTRICT ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE \`webhook_listener\` ADD CONSTRAINT \`FK_webhook_listener_url\` FOREIGN KEY (\`urlId\`) REFERENCES \`webhook_url\`(\`id\`) ON DELETE RESTRICT ON UPDATE NO ACTION`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE \`webhook_listener\` DROP FOREIGN KEY \`FK_webhook_listener_url\``);
    await queryRunner.query(`ALTER TABLE \`webhook_listener\` DROP FOREIGN KEY \`FK_webhook_listener_identity\``);
    await queryRunner.query(`DROP INDEX \`IDX_webhook_listener_space_entity_state\` ON \`webhook_listener\``);
    await queryRunner.query(`DROP TABLE \`webhook_listener\``);
    await queryRunner.query(`DROP INDEX \`IDX_webhook_url_space_url\` ON \`webhook_url\``);
    await queryRunner.query(`DROP TABLE \`webhook_url\``);
    await queryRunner.query(`DROP INDEX \`IDX_webhook_identity_key_id\` ON \`webhook_identity\``);
    await queryRunner.query(`DROP TABLE \`webhook_identity\``);
  }
}
