import { Inject, Injectable } from '@nestjs/common';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookValidationError } from '../errors/webhook.errors.js';
import { ENTITY_ID_MAX_LENGTH, STATE_MAX_LENGTH, WebhookEvent } from '../model/webhook-event.entity.js';
import { characterCount } from '../validation/input.validation.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { onMysqlConnectionInOneTurn } from '../persistence/driver-query.js';
import { PreparedStatement } from '../persistence/prepared-statement.js';
import { integerArray, SqlText } from '../persistence/sql-text.js';
import {
  inTransaction,
  runStepsThrough,
  synchronousSqlite,
  throughGate,
  type DriverStatement,
  type TransactionSteps,
} from '../persistence/transaction.js';
import { watchesState, type MatchableListener } from '../persistence/webhook-listener.repository.js';
import type { RegisteredWebhookEntity } from '../registry/webhook-entity.registry.js';
import { CommitNotifier } from './commit-notifier.js';
import { ListenerMatchCache } from './listener-match.cache.js';
import { TransactionWatch, type ChangeLevel } from './transaction-watch.js';

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

/** The change as it happened, asked through the manager that records it: `null` when it did not happen. */
export type ChangeResolver = (manager: EntityManager, change: EntityChange) => Promise<EntityChange | null>;

/** Writes the event and its deliveries for a change, through the manager of the change's transaction. */
@Injectable()
export class ChangeRecorder {
  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly cache: ListenerMatchCache,
    private readonly notifier: CommitNotifier,
    private readonly transactionWatch: TransactionWatch,
  ) {}

  private readonly sql = new SqlText(this.dataSource);
  /** The latest capture begun on each query runner at each depth, which the next one there waits for. */
  private readonly recording = new WeakMap<QueryRunner, Map<number, Promise<number>>>();
  private readonly eventColumns = ['linkedSpaceId', 'entityName', 'listenerEntityId', 'entityId', 'state', 'createdOn', 'occurredAt']
    .map((property) => this.sql.column(WebhookEvent, property))
    .join(', ');
  private readonly deliveryColumns = ['eventId', 'listenerId', 'urlId', 'linkedSpaceId', 'state', 'attempts', 'nextAttemptAt', 'createdOn']
    .map((property) => this.sql.column(WebhookDelivery, property))
    .join(', ');
  /**
   * On PostgreSQL the event and its deliveries in one statement, every value bound so that its text
   * never changes: $1–$6 the event's columns, $7–$9 the deliveries' state, creation and due time
   * (which is also the event's `occurredAt`), $10–$11 their listener and URL ids.
   */
  private readonly postgresInsert = this.sql.postgres
    ? new PreparedStatement(
        this.dataSource,
        `WITH event AS (INSERT INTO ${this.sql.table(WebhookEvent)} (${this.eventColumns})` +
          ` VALUES ($1::int, $2::varchar, $3::bigint, $4::varchar, $5::varchar, $6::timestamp, $9::bigint) RETURNING ${this.sql.column(WebhookEvent, 'id')} AS id)` +
          ` INSERT INTO ${this.sql.table(WebhookDelivery)} (${this.deliveryColumns})` +
          ` SELECT event.id, listener.id, listener.url_id, $1::int, $7::varchar, 0, $9::bigint, $8::timestamp` +
          ` FROM event CROSS JOIN unnest($10::int[], $11::int[]) AS listener (id, url_id)`,
      )
    : null;

  /**
   * Records through `manager` when it is inside a transaction, so the event commits or rolls back
   * with it; after a write outside any transaction on PostgreSQL, MySQL or MariaDB (already committed,
   * such as `repository.insert()`), on the write's own connection (see `recordOnWritersConnection`);
   * otherwise (no manager, SQLite) in a transaction of its own. `inTurn` (see `recordInTurn`) for the
   * changes TypeORM reports; `resolve`, asked in the change's turn, what happened (see ChangeResolver).
   */
  recordJoining(
    manager: EntityManager | undefined,
    change: EntityChange,
    { inTurn = false, resolve }: { inTurn?: boolean; resolve?: ChangeResolver } = {},
  ): Promise<number> {
    const record = (through: EntityManager) => (inTurn ? this.recordInTurn(through, change, resolve) : this.record(through, change));
    const queryRunner = manager?.queryRunner;
    if (queryRunner?.isTransactionActive) return record(manager!);
    if (queryRunner && !queryRunner.isReleased && (this.sql.postgres || this.sql.mysql))
      return this.recordOnWritersConnection(manager!, record);
    return inTransaction(this.dataSource, record);
  }

  /**
   * A write outside any transaction is committed already. Its event and deliveries follow on the
   * write's own connection: each of a pool's worth of such writes at once would otherwise hold its
   * connection while waiting for a second one. On PostgreSQL they are one statement; on MySQL and
   * MariaDB statements handed to the connection in one turn (see `followingOnWritersConnection`). A
   * transaction that another subscriber opens there meanwhile is waited for (see TransactionWatch),
   * so that they do not run inside it. Once TypeORM has given the connection back (another
   * subscriber of the write failed) before they were sent, another connection records, in a
   * transaction.
   */
  private async recordOnWritersConnection(manager: EntityManager, record: (through: EntityManager) => Promise<number>): Promise<number> {
    try {
      return await record(manager);
    } catch (error) {
      if (!manager.queryRunner!.isReleased) throw error;
      return inTransaction(this.dataSource, record);
    }
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
    const level = this.transactionWatch.watch(manager.queryRunner);
    const matched = await this.matchedListeners(manager, change);
    if (matched.length === 0) return 0;
    const writeEvent = this.eventAndDeliverySteps(change, matched, new Date());
    const sqlite = synchronousSqlite(this.dataSource)!;
    // The check, the look at the open transaction and the statements run in one turn: no level can
    // open or end between them.
    const ranInOpen = await throughGate(level, async (check) => {
      const inOpen = ranInOpenTransaction();
      if (!inOpen) return inOpen;
      check();
      sqlite.runSteps(writeEvent);
      return true;
    });
    if (ranInOpen) {
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

  /** The listeners to notify of the change; throws when they match but the event could not hold the change. */
  private async matchedListeners(manager: EntityManager, change: EntityChange): Promise<MatchableListener[]> {
    const listeners = await this.cache.activeListeners(manager, change.spaceId, change.entity.name);
    const matched = listeners.filter((listener) => matches(listener, change));
    if (matched.length > 0) requireStorable(change);
    return matched;
  }

  /** Throws when listeners match the change but an event could not hold it (see `fitsInEvent`). */
  async refuseUnstorable(manager: EntityManager, change: EntityChange): Promise<void> {
    await this.matchedListeners(manager, change);
  }

  /**
   * Records after the captures begun before on the same query runner at the same level: TypeORM
   * reports the rows of save([a, b, c]) together and awaits their captures at once. Side by side, the
   * captures would hand statements to a connection still running one, which pg 8 queues with a
   * deprecation warning and pg 9 refuses. (Other subscribers' queries, and a rollback after one of
   * them failed, can still overlap a capture.) A capture that waited behind one whose transaction then
   * rolled back writes nothing (see TransactionWatch). A capture in a savepoint that another subscriber
   * opened does not wait for the captures of the level below, which wait for that savepoint to end;
   * nor does `publish()`, which a host's query subscriber may call while a capture reads the listeners.
   */
  private recordInTurn(manager: EntityManager, change: EntityChange, resolve?: ChangeResolver): Promise<number> {
    const queryRunner = manager.queryRunner;
    if (!queryRunner) return this.record(manager, change, resolve);
    const level = this.transactionWatch.watch(queryRunner);
    const { depth } = level;
    const turns = this.recording.get(queryRunner) ?? new Map<number, Promise<number>>();
    this.recording.set(queryRunner, turns);
    const previous = turns.get(depth);
    const recording = (previous ? previous.then(noop, noop) : Promise.resolve()).then(() => this.recordAt(level, manager, change, resolve));
    turns.set(depth, recording);
    const forget = () => turns.get(depth) === recording && turns.delete(depth);
    recording.then(forget, forget);
    return recording;
  }

  /** Returns the number of deliveries written (0: no listener matched, nothing written). */
  private record(manager: EntityManager, change: EntityChange, resolve?: ChangeResolver): Promise<number> {
    return this.recordAt(this.transactionWatch.watch(manager.queryRunner), manager, change, resolve);
  }

  private async recordAt(level: ChangeLevel, manager: EntityManager, reported: EntityChange, resolve?: ChangeResolver): Promise<number> {
    const change = resolve ? await resolve(manager, reported) : reported;
    if (!change) return 0;
    const matched = await this.matchedListeners(manager, change);
    if (matched.length === 0) return 0;

    await this.insertEventAndDeliveries(manager, change, matched, new Date(), level);
    this.notifier.recorded(manager.queryRunner, matched.length);
    return matched.length;
  }

  /**
   * One prepared statement on PostgreSQL; on MySQL and MariaDB outside any transaction, statements
   * sent together (see `followingOnWritersConnection`); elsewhere the event, then its deliveries under
   * the event's generated id. Each statement is sent at the change's level, or not at all (see
   * TransactionWatch).
   */
  private async insertEventAndDeliveries(
    manager: EntityManager,
    change: EntityChange,
    matched: MatchableListener[],
    now: Date,
    level: ChangeLevel,
  ) {
    if (this.sql.mysql && level.depth === 0) {
      const statements = this.followingOnWritersConnection(change, matched, now);
      await throughGate(level, (check) => onMysqlConnectionInOneTurn(this.dataSource, manager.queryRunner!, statements, check));
      return;
    }
    if (!this.postgresInsert) {
      await runStepsThrough(manager, this.eventAndDeliverySteps(change, matched, now), level);
      return;
    }
    const values = [
      ...this.eventValues(change, now),
      WebhookDeliveryState.PENDING,
      this.sql.stored(WebhookDelivery, 'createdOn', now),
      now.getTime(),
      integerArray(matched.map((listener) => listener.id)),
      integerArray(matched.map((listener) => listener.urlId)),
    ];
    const insert = this.postgresInsert;
    await throughGate(level, (check) => insert.run(manager.queryRunner!, check, values));
  }

  /** The event, then its deliveries under the event's generated id (SQLite; MySQL and MariaDB inside a transaction). */
  private *eventAndDeliverySteps(change: EntityChange, matched: MatchableListener[], now: Date): TransactionSteps<void> {
    // Every value bound: better-sqlite3 statements are prepared once per text and kept (on the
    // connection by SynchronousSqlite), which one text per number of listeners lets capture reuse.
    const { insertId } = yield this.eventInsert(change, now);
    const [spaceId, state, dueAt, createdOn] = this.deliveryValues(change, now);
    yield [
      `${this.sql.insertInto(WebhookDelivery)} (${this.deliveryColumns}) VALUES ${matched.map(() => '(?, ?, ?, ?, ?, 0, ?, ?)').join(', ')}`,
      matched.flatMap((listener) => [insertId, listener.id, listener.urlId, spaceId, state, dueAt, createdOn]),
    ];
  }

  /**
   * The event and its deliveries on MySQL or MariaDB after a write outside any transaction that
   * TypeORM knows of, as statements sent together without waiting for the event's id. The deliveries
   * find the event by LAST_INSERT_ID(), first set to 0 so that they find none when the event's insert
   * failed before generating an id (it would otherwise still hold the id of the application's row),
   * and through the table, for an event whose insert was undone after. No START TRANSACTION: it would
   * commit a transaction the application opened by hand, in which the statements now run; outside
   * one, each commits by itself, and should the deliveries' insert alone fail, the event stands
   * without deliveries (nothing is sent for it, the write fails, and the retention job removes it).
   */
  private followingOnWritersConnection(change: EntityChange, matched: MatchableListener[], now: Date): DriverStatement[] {
    const listeners = matched.map(() => 'SELECT ? AS id, ? AS url_id').join(' UNION ALL ');
    const eventId = this.sql.column(WebhookEvent, 'id', 'recorded');
    return [
      ['SELECT LAST_INSERT_ID(0)', []],
      this.eventInsert(change, now),
      [
        `INSERT INTO ${this.sql.table(WebhookDelivery)} (${this.deliveryColumns})` +
          ` SELECT ${eventId}, listener.id, listener.url_id, ?, ?, 0, ?, ?` +
          ` FROM ${this.sql.table(WebhookEvent)} AS recorded CROSS JOIN (${listeners}) AS listener WHERE ${eventId} = LAST_INSERT_ID()`,
        [...this.deliveryValues(change, now), ...matched.flatMap((listener) => [listener.id, listener.urlId])],
      ],
    ];
  }

  private eventInsert(change: EntityChange, now: Date): DriverStatement {
    return [
      `INSERT INTO ${this.sql.table(WebhookEvent)} (${this.eventColumns}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [...this.eventValues(change, now), now.getTime()],
    ];
  }

  /** A new delivery's values after its event, listener and URL: space, state, due time and creation time. */
  private deliveryValues(change: EntityChange, now: Date): unknown[] {
    return [change.spaceId, WebhookDeliveryState.PENDING, now.getTime(), this.sql.stored(WebhookDelivery, 'createdOn', now)];
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

/**
 * An id or a state longer than the event's columns would fail the save on PostgreSQL and MySQL in the
 * database's words, and be kept whole on SQLite: refused alike on all of them, naming the entity.
 */
function requireStorable({ entity, entityId, state }: EntityChange): void {
  if (longerThan(entityId, ENTITY_ID_MAX_LENGTH)) {
    throw new WebhookValidationError(
      'entityId',
      `${entity.name} ${entityId.slice(0, 40)}… has an id of ${characterCount(entityId)} characters; a webhook event holds ${ENTITY_ID_MAX_LENGTH} at most`,
    );
  }
  if (longerThan(state, STATE_MAX_LENGTH)) {
    throw new WebhookValidationError(
      'state',
      `${entity.name} ${entityId} is in a state of ${characterCount(state)} characters; a webhook event holds ${STATE_MAX_LENGTH} at most`,
    );
  }
}

/** Whether an id and a state fit an event's columns, which count characters, not UTF-16 code units. */
export function fitsInEvent(entityId: string, state: string): boolean {
  return !longerThan(entityId, ENTITY_ID_MAX_LENGTH) && !longerThan(state, STATE_MAX_LENGTH);
}

function longerThan(text: string, max: number): boolean {
  return text.length > max && characterCount(text) > max;
}

function noop(): void {}

function matches(listener: MatchableListener, change: EntityChange): boolean {
  return watchesState(listener, change.state) && (change.stateChanged || listener.notifyEveryChange);
}
