import type { MigrationInterface, QueryRunner } from 'typeorm';

/** An entity's registered id (`listenerEntityId`) may exceed 32 bits, as wallee's own ids do. */
export class WebhookEntityIdBigintMysql1796604208908 implements MigrationInterface {
  name = 'WebhookEntityIdBigintMysql1796604208908';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE \`webhook_event\` MODIFY \`listenerEntityId\` bigint NOT NULL`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE \`webhook_event\` MODIFY \`listenerEntityId\` int NOT NULL`);
  }
}
