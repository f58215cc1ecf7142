import type { MigrationInterface, QueryRunner } from 'typeorm';

/** An entity's registered id (`listenerEntityId`) may exceed 32 bits, as wallee's own ids do. */
export class WebhookEntityIdBigintPostgres1796604208908 implements MigrationInterface {
  name = 'WebhookEntityIdBigintPostgres1796604208908';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "webhook_event" ALTER COLUMN "listenerEntityId" TYPE bigint`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "webhook_event" ALTER COLUMN "listenerEntityId" TYPE integer`);
  }
}
