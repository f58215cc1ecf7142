import { WebhookConfigurationError } from '../errors/webhook.errors.js';
import { WebhookInitialMysql1795796132963 } from './mysql/1795796132963-webhook-initial.js';
import { WebhookCaptureMysql1795798068387 } from './mysql/1795798068387-webhook-capture.js';
import { WebhookDeliveryMysql1795798299800 } from './mysql/1795798299800-webhook-delivery.js';
import { WebhookSchedulerMysql1795801310291 } from './mysql/1795801310291-webhook-scheduler.js';
import { WebhookIdentityRotationMysql1795817866041 } from './mysql/1795817866041-webhook-identity-rotation.js';
import { WebhookHotPathForeignKeysMysql1795819371130 } from './mysql/1795819371130-webhook-hot-path-foreign-keys.js';
import { WebhookFinishedByDueTimeMysql1795824242995 } from './mysql/1795824242995-webhook-finished-by-due-time.js';
import { WebhookDeliveryListenerUncheckedMysql1795862455698 } from './mysql/1795862455698-webhook-delivery-listener-unchecked.js';
import { WebhookEntityIdBigintMysql1796604208908 } from './mysql/1796604208908-webhook-entity-id-bigint.js';
import { WebhookEventOccurredAtMysql1796631050506 } from './mysql/1796631050506-webhook-event-occurred-at.js';
import { WebhookInitialPostgres1795796132963 } from './postgres/1795796132963-webhook-initial.js';
import { WebhookCapturePostgres1795798068387 } from './postgres/1795798068387-webhook-capture.js';
import { WebhookDeliveryPostgres1795798299800 } from './postgres/1795798299800-webhook-delivery.js';
import { WebhookSchedulerPostgres1795801310291 } from './postgres/1795801310291-webhook-scheduler.js';
import { WebhookIdentityRotationPostgres1795817866041 } from './postgres/1795817866041-webhook-identity-rotation.js';
import { WebhookHotPathForeignKeysPostgres1795819371130 } from './postgres/1795819371130-webhook-hot-path-foreign-keys.js';
import { WebhookFinishedByDueTimePostgres1795824242995 } from './postgres/1795824242995-webhook-finished-by-due-time.js';
import { WebhookDeliveryListenerUncheckedPostgres1795862455698 } from './postgres/1795862455698-webhook-delivery-listener-unchecked.js';
import { WebhookEntityIdBigintPostgres1796604208908 } from './postgres/1796604208908-webhook-entity-id-bigint.js';
import { WebhookEventOccurredAtPostgres1796631050506 } from './postgres/1796631050506-webhook-event-occurred-at.js';
import { WebhookInitialSqlite1795796132963 } from './sqlite/1795796132963-webhook-initial.js';
import { WebhookCaptureSqlite1795798068387 } from './sqlite/1795798068387-webhook-capture.js';
import { WebhookDeliverySqlite1795798299800 } from './sqlite/1795798299800-webhook-delivery.js';
import { WebhookSchedulerSqlite1795801310291 } from './sqlite/1795801310291-webhook-scheduler.js';
import { WebhookIdentityRotationSqlite1795817866041 } from './sqlite/1795817866041-webhook-identity-rotation.js';
import { WebhookHotPathForeignKeysSqlite1795819371130 } from './sqlite/1795819371130-webhook-hot-path-foreign-keys.js';
import { WebhookFinishedByDueTimeSqlite1795824242995 } from './sqlite/1795824242995-webhook-finished-by-due-time.js';
import { WebhookDeliveryListenerUncheckedSqlite1795862455698 } from './sqlite/1795862455698-webhook-delivery-listener-unchecked.js';
import { WebhookEntityIdBigintSqlite1796604208908 } from './sqlite/1796604208908-webhook-entity-id-bigint.js';
import { WebhookEventOccurredAtSqlite1796631050506 } from './sqlite/1796631050506-webhook-event-occurred-at.js';

/** The module's migrations per database family, oldest first; add them to the host's `migrations`. */
export const WEBHOOK_MIGRATIONS = {
  postgres: [
    WebhookInitialPostgres1795796132963,
    WebhookCapturePostgres1795798068387,
    WebhookDeliveryPostgres1795798299800,
    WebhookSchedulerPostgres1795801310291,
    WebhookIdentityRotationPostgres1795817866041,
    WebhookHotPathForeignKeysPostgres1795819371130,
    WebhookFinishedByDueTimePostgres1795824242995,
    WebhookDeliveryListenerUncheckedPostgres1795862455698,
    WebhookEntityIdBigintPostgres1796604208908,
    WebhookEventOccurredAtPostgres1796631050506,
  ],
  mysql: [
    WebhookInitialMysql1795796132963,
    WebhookCaptureMysql1795798068387,
    WebhookDeliveryMysql1795798299800,
    WebhookSchedulerMysql1795801310291,
    WebhookIdentityRotationMysql1795817866041,
    WebhookHotPathForeignKeysMysql1795819371130,
    WebhookFinishedByDueTimeMysql1795824242995,
    WebhookDeliveryListenerUncheckedMysql1795862455698,
    WebhookEntityIdBigintMysql1796604208908,
    WebhookEventOccurredAtMysql1796631050506,
  ],
  sqlite: [
    WebhookInitialSqlite1795796132963,
    WebhookCaptureSqlite1795798068387,
    WebhookDeliverySqlite1795798299800,
    WebhookSchedulerSqlite1795801310291,
    WebhookIdentityRotationSqlite1795817866041,
    WebhookHotPathForeignKeysSqlite1795819371130,
    WebhookFinishedByDueTimeSqlite1795824242995,
    WebhookDeliveryListenerUncheckedSqlite1795862455698,
    WebhookEntityIdBigintSqlite1796604208908,
    WebhookEventOccurredAtSqlite1796631050506,
  ],
} as const;

/** The migrations for a TypeORM DataSource `type` (postgres, mysql, mariadb, better-sqlite3, sqlite). */
export function webhookMigrationsFor(dataSourceType: string): Function[] {
  switch (dataSourceType) {
    case 'postgres':
      return [...WEBHOOK_MIGRATIONS.postgres];
    case 'mysql':
    case 'mariadb':
      return [...WEBHOOK_MIGRATIONS.mysql];
    case 'better-sqlite3':
    case 'sqlite':
      return [...WEBHOOK_MIGRATIONS.sqlite];
    default:
      throw new WebhookConfigurationError(
        'DataSource type',
        `"${dataSourceType}" has no webhook migrations; supported: postgres, mysql, mariadb, better-sqlite3, sqlite`,
      );
  }
}
