import { Inject, Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookEvent } from '../model/webhook-event.entity.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { integer, SqlText } from '../persistence/sql-text.js';
import { inTransaction } from '../persistence/transaction.js';
import type { MatchableListener } from '../persistence/webhook-listener.repository.js';
import type { RegisteredWebhookEntity } from '../registry/webhook-entity.registry.js';
import { CommitNotifier } from './commit-notifier.js';
import { ListenerMatchCache } from './listener-match.cache.js';

/** One change of a webhook entity, as the capture sees it. */
export interface EntityChange {
  entity: RegisteredWebhookEntity;
  entityId: string;
  spaceId: number;
  /** The state after the change. */
  state: string;
  /** False for an update that kept the state (only `notifyEveryChange` listeners hear of it). */
  stateChanged: boolean;
}

/** Writes the event and its deliveries for a change, through the manager of the change's transaction. */
@Injectable()
export class ChangeRecorder {
  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly cache: ListenerMatchCache,
    private readonly notifier: CommitNotifier,
  ) {
    this.sql = new SqlText(dataSource);
  }

  private readonly sql: SqlText;

  /**
   * Records through `manager` when it is inside a transaction, so the event commits or rolls back
   * with it; otherwise (no manager, or a write already committed such as `repository.insert()`
   * outside a transaction) in a transaction of its own.
   */
  recordJoining(manager: EntityManager | undefined, change: EntityChange): Promise<number> {
    return manager?.queryRunner?.isTransactionActive
      ? this.record(manager, change)
      : inTransaction(this.dataSource, (own) => this.record(own, change));
  }

  /** Returns the number of deliveries written (0: no listener matched, nothing written). */
  async record(manager: EntityManager, change: EntityChange): Promise<number> {
    const listeners = await this.cache.activeListeners(manager, change.spaceId, change.entity.name);
    const matched = listeners.filter((listener) => matches(listener, change));
    if (matched.length === 0) return 0;

    await this.insertEventAndDeliveries(manager, change, matched, new Date());
    this.notifier.recorded(manager.queryRunner, matched.length);
    return matched.length;
  }

  /** One statement on PostgreSQL; elsewhere the event, then its deliveries under the event's generated id. */
  private async insertEventAndDeliveries(manager: EntityManager, change: EntityChange, matched: MatchableListener[], now: Date) {
    const { sql } = this;
    const e = (property: string) => sql.column(WebhookEvent, property);
    const d = (property: string) => sql.column(WebhookDelivery, property);
    const eventColumns = ['linkedSpaceId', 'entityName', 'listenerEntityId', 'entityId', 'state', 'createdOn'].map(e).join(', ');
    const eventValues = [integer(change.spaceId), '?', integer(change.entity.id), '?', '?', '?'].join(', ');
    const eventParameters = [change.entity.name, change.entityId, change.state, sql.stored(WebhookEvent, 'createdOn', now)];
    const deliveryColumns = ['eventId', 'listenerId', 'urlId', 'linkedSpaceId', 'state', 'attempts', 'nextAttemptAt', 'createdOn']
      .map(d)
      .join(', ');
    const deliveryParameters = [WebhookDeliveryState.PENDING, sql.stored(WebhookDelivery, 'createdOn', now)];
    const deliveryRow = (eventId: string, listener: MatchableListener) =>
      `(${eventId}, ${integer(listener.id)}, ${integer(listener.urlId)}, ${integer(change.spaceId)}, ?, 0, ${integer(now.getTime())}, ?)`;
    if (sql.postgres) {
      const pairs = matched.map((listener) => `(${integer(listener.id)}, ${integer(listener.urlId)})`).join(', ');
      await manager.query(
        ...sql.statement(
          `WITH event AS (INSERT INTO ${sql.table(WebhookEvent)} (${eventColumns}) VALUES (${eventValues}) RETURNING ${e('id')} AS id)` +
            ` INSERT INTO ${sql.table(WebhookDelivery)} (${deliveryColumns})` +
            ` SELECT event.id, listener.id, listener.url_id, ${integer(change.spaceId)}, CAST(? AS varchar), 0, ${integer(now.getTime())}, CAST(? AS timestamp)` +
            ` FROM event CROSS JOIN (VALUES ${pairs}) AS listener (id, url_id)`,
          [...eventParameters, ...deliveryParameters],
        ),
      );
      return;
    }
    const inserted = await manager.query(
      ...sql.statement(`INSERT INTO ${sql.table(WebhookEvent)} (${eventColumns}) VALUES (${eventValues})`, eventParameters),
    );
    const eventId = integer(Number(sql.sqlite ? inserted : inserted.insertId));
    await manager.query(
      ...sql.statement(
        `INSERT INTO ${sql.table(WebhookDelivery)} (${deliveryColumns}) VALUES ${matched.map((listener) => deliveryRow(eventId, listener)).join(', ')}`,
        matched.flatMap(() => deliveryParameters),
      ),
    );
  }
}

function matches(listener: MatchableListener, change: EntityChange): boolean {
  const stateWatched = listener.entityStates === null || listener.entityStates.has(change.state);
  return stateWatched && (change.stateChanged || listener.notifyEveryChange);
}
