import { Inject, Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookEvent } from '../model/webhook-event.entity.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { PreparedStatement } from '../persistence/prepared-statement.js';
import { integerArray, SqlText } from '../persistence/sql-text.js';
import {
  inTransaction,
  runStepsThrough,
  synchronousSqlite,
  type DriverStatement,
  type TransactionSteps,
} from '../persistence/transaction.js';
import { watchesState, type MatchableListener } from '../persistence/webhook-listener.repository.js';
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
  ) {}

  private readonly sql = new SqlText(this.dataSource);
  private readonly eventColumns = ['linkedSpaceId', 'entityName', 'listenerEntityId', 'entityId', 'state', 'createdOn']
    .map((property) => this.sql.column(WebhookEvent, property))
    .join(', ');
  private readonly deliveryColumns = ['eventId', 'listenerId', 'urlId', 'linkedSpaceId', 'state', 'attempts', 'nextAttemptAt', 'createdOn']
    .map((property) => this.sql.column(WebhookDelivery, property))
    .join(', ');
  /**
   * On PostgreSQL the event and its deliveries in one statement, every value bound so that its text
   * never changes: $1–$6 the event's columns, $7–$9 the deliveries' state, creation and due time,
   * $10–$11 their listener and URL ids.
   */
  private readonly postgresInsert = this.sql.postgres
    ? new PreparedStatement(
        this.dataSource,
        `WITH event AS (INSERT INTO ${this.sql.table(WebhookEvent)} (${this.eventColumns})` +
          ` VALUES ($1::int, $2::varchar, $3::bigint, $4::varchar, $5::varchar, $6::timestamp) RETURNING ${this.sql.column(WebhookEvent, 'id')} AS id)` +
          ` INSERT INTO ${this.sql.table(WebhookDelivery)} (${this.deliveryColumns})` +
          ` SELECT event.id, listener.id, listener.url_id, $1::int, $7::varchar, 0, $9::bigint, $8::timestamp` +
          ` FROM event CROSS JOIN unnest($10::int[], $11::int[]) AS listener (id, url_id)`,
      )
    : null;

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

  /**
   * Records a change written on better-sqlite3's one connection, which TypeORM shares between all
   * transactions (see `SharedConnectionWrites`). When the transaction the write ran in is still
   * open, the event's statements run in it on the connection at once, in the same turn as that
   * check: through TypeORM, a turn later, they could run after another part of the application had
   * ended it. When the write ran outside any transaction, or in one that has ended or ends later,
   * the event recorded in whatever transaction is open would be lost when that one rolls back
   * although the row stands, or kept although the row's change was rolled back. It is then written
   * in one turn once no transaction is open, and only if `rowAsChanged` finds the row (an updated
   * one with the state it was given); a row changed or removed again by a transaction that committed
   * meanwhile is taken for one whose change was rolled back. A write whose beginning was not seen,
   * or a removal (no `rowAsChanged`) that did not run in the open transaction, is recorded as
   * `recordJoining()` does.
   */
  async recordOnSharedConnection(
    manager: EntityManager,
    change: EntityChange,
    ranInOpenTransaction: () => boolean | undefined,
    rowAsChanged: (() => DriverStatement) | null,
  ): Promise<number> {
    const matched = await this.matchedListeners(manager, change);
    if (matched.length === 0) return 0;
    const writeEvent = this.eventAndDeliverySteps(change, matched, new Date());
    const sqlite = synchronousSqlite(this.dataSource)!;
    const ranInOpen = ranInOpenTransaction();
    if (ranInOpen) {
      sqlite.runSteps(writeEvent);
      this.notifier.recorded(manager.queryRunner, matched.length);
      return matched.length;
    }
    if (ranInOpen === undefined || !rowAsChanged) return this.recordJoining(manager, change);
    const lookup = rowAsChanged();
    const recorded = await sqlite.transaction(() =>
      sqlite.runSteps(
        (function* (): TransactionSteps<boolean> {
          if ((yield lookup).rows.length === 0) return false;
          yield* writeEvent;
          return true;
        })(),
      ),
    );
    if (!recorded) return 0;
    this.notifier.recorded(undefined, matched.length);
    return matched.length;
  }

  /**
   * Known from memory that no listener matches the change: the capture then returns without a
   * promise, and a save() that concerns no listener does not wait for one.
   */
  surelyUnmatched(change: EntityChange): boolean {
    const listeners = this.cache.cachedListeners(change.spaceId, change.entity.name);
    return listeners !== undefined && !listeners.some((listener) => matches(listener, change));
  }

  private async matchedListeners(manager: EntityManager, change: EntityChange): Promise<MatchableListener[]> {
    const listeners = await this.cache.activeListeners(manager, change.spaceId, change.entity.name);
    return listeners.filter((listener) => matches(listener, change));
  }

  /** Returns the number of deliveries written (0: no listener matched, nothing written). */
  async record(manager: EntityManager, change: EntityChange): Promise<number> {
    const matched = await this.matchedListeners(manager, change);
    if (matched.length === 0) return 0;

    await this.insertEventAndDeliveries(manager, change, matched, new Date());
    this.notifier.recorded(manager.queryRunner, matched.length);
    return matched.length;
  }

  /** One prepared statement on PostgreSQL; elsewhere the event, then its deliveries under the event's generated id. */
  private async insertEventAndDeliveries(manager: EntityManager, change: EntityChange, matched: MatchableListener[], now: Date) {
    if (!this.postgresInsert) {
      await runStepsThrough(manager, this.eventAndDeliverySteps(change, matched, now));
      return;
    }
    const pending = WebhookDeliveryState.PENDING;
    await this.postgresInsert.run(manager.queryRunner!, [
      ...this.eventValues(change, now),
      pending,
      this.sql.stored(WebhookDelivery, 'createdOn', now),
      now.getTime(),
      integerArray(matched.map((listener) => listener.id)),
      integerArray(matched.map((listener) => listener.urlId)),
    ]);
  }

  /** The event, then its deliveries under the event's generated id (every database but PostgreSQL). */
  private *eventAndDeliverySteps(change: EntityChange, matched: MatchableListener[], now: Date): TransactionSteps<void> {
    const { sql } = this;
    // Every value bound: better-sqlite3 statements are prepared once per text and kept (on the
    // connection by SynchronousSqlite), which one text per number of listeners lets capture reuse.
    const { insertId } = yield [
      `INSERT INTO ${sql.table(WebhookEvent)} (${this.eventColumns}) VALUES (?, ?, ?, ?, ?, ?)`,
      this.eventValues(change, now),
    ];
    const pending = WebhookDeliveryState.PENDING;
    const deliveryCreatedOn = sql.stored(WebhookDelivery, 'createdOn', now);
    yield [
      `${sql.insertInto(WebhookDelivery)} (${this.deliveryColumns}) VALUES ${matched.map(() => '(?, ?, ?, ?, ?, 0, ?, ?)').join(', ')}`,
      matched.flatMap((listener) => [insertId, listener.id, listener.urlId, change.spaceId, pending, now.getTime(), deliveryCreatedOn]),
    ];
  }

  private eventValues(change: EntityChange, now: Date): unknown[] {
    return [
      change.spaceId,
      change.entity.name,
      change.entity.id,
      change.entityId,
      change.state,
      this.sql.stored(WebhookEvent, 'createdOn', now),
    ];
  }
}

function matches(listener: MatchableListener, change: EntityChange): boolean {
  return watchesState(listener, change.state) && (change.stateChanged || listener.notifyEveryChange);
}
