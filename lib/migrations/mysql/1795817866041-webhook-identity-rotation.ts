import type { MigrationInterface, QueryRunner } from 'typeorm';

export class WebhookIdentityRotationMysql1795817866041 implements MigrationInterface {
  name = 'WebhookIdentityRotationMysql1795817866041';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE \`webhook_retired_key\` (\`id\` int NOT NULL AUTO_INCREMENT, \`identityId\` int NOT NULL, \`keyId\` varchar(36) NOT NULL, \`publicKey\` text NOT NULL, \`secret\` text NOT NULL, \`retiredAt\` bigint NOT NULL, \`signsUntil\` bigint NOT NULL, INDEX \`IDX_webhook_retired_key_identity\` (\`identityId\`), UNIQUE INDEX \`IDX_webhook_retired_key_key_id\` (\`keyId\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await queryRunner.query(
      `ALTER TABLE \`webhook_retired_key\` ADD CONSTRAINT \`FK_webhook_retired_key_identity\` FOREIGN KEY (\`identityId\`) REFERENCES \`webhook_identity\`(\`id\`) ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE \`webhook_retired_key\` DROP FOREIGN KEY \`FK_webhook_retired_key_identity\``);
    await queryRunner.query(`DROP INDEX \`IDX_webhook_retired_key_key_id\` ON \`webhook_retired_key\``);
    await queryRunner.query(`DROP INDEX \`IDX_webhook_retired_key_identity\` ON \`webhook_retired_key\``);
    await queryRunner.query(`DROP TABLE \`webhook_retired_key\``);
  }
}
