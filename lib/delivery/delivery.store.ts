import { Inject, Injectable } from '@nestjs/common';
import { In, type DataSource, type EntityManager, type ObjectLiteral } from 'typeorm';
import { setNewest } from '../caching/bounded-map.js';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookDeliveryAttempt } from '../model/webhook-delivery-attempt.entity.js';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookEvent } from '../model/webhook-event.entity.js';
import { WebhookIdentity } from '../model/webhook-identity.entity.js';
import { WebhookListener } from '../model/webhook-listener.entity.js';
import { WebhookRetiredKey } from '../model/webhook-retired-key.entity.js';
import { WebhookUrl } from '../model/webhook-url.entity.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { LIVE_STATES } from '../management/lifecycle.js';
import { lastRowsOfOneTransaction } from '../persistence/driver-query.js';
import { runTransactionSteps, writeAll, type TransactionSteps } from '../persistence/transaction.js';
import type { StoredIdentityKeys } from '../signing/webhook-signer.service.js';
import { KeyEncryptionService } from '../signing/key-encryption.service.js';
import { SqlText, integerArray, type Statement, type StatementBuilder } from '../persistence/sql-text.js';
import type { PreparedRequest } from './delivery-requests.js';
import type { AttemptResult } from './http-sender.js';
import { addToGroup } from './groups.js';

/** Identities whose keys are kept in memory at most; more are read again. */
const KEY_CACHE_SIZE = 10_000;
/**
 * How long keys read are used: another instance may rotate an identity, or delete a space's default
 * identity and make it anew. This instance forgets them at once when it changes an identity.
 */
const KEYS_TTL_MS = 60_000;

/** Everything needed to send one claimed delivery. */
export interface ClaimedDelivery {
  id: number;
  attempts: number;
  eventId: number;
  listenerId: number;
  urlId: number;
  spaceId: number;
  entityName: string;
  listenerEntityId: number;
  entityId: string;
  state: string | null;
  /** When the event was recorded (epoch ms). */
  eventOccurredAt: number;
  url: string;
  /** Its listener and its URL are ACTIVE, and its event still exists; otherwise it is cancelled unsent. */
  sendable: boolean;
  signed: boolean;
  /** The key of the listener's identity; `null`: the space's default identity signs. */
  keyId: string | null;
  /** Epoch ms when this instance's lease on it ends. */
  leaseUntil: number;
  /** Its request, built with the others of its claim (see DeliveryRequests); `null` once it started. */
  prepared?: PreparedRequest | null;
}

/** A delivery under one lease of this instance: the lease's end tells it apart from a later lease of the same delivery. */
export interface Leased {
  id: number;
  leaseUntil: number;
}

/** How a finished attempt changes its delivery. */
export type DeliveryCompletion =
  | { kind: 'succeeded' }
  | { kind: 'retry'; nextAttemptAt: number }
  /** `deactivatesListener`: why its listener is to be deactivated once the result is written (410 Gone). */
  | { kind: 'abandoned'; deactivatesListener?: string }
  | { kind: 'cancelled' };

export interface FinishedAttempt {
  delivery: ClaimedDelivery;
  /** `null` for a delivery cancelled without an attempt. */
  result: AttemptResult | null;
  completion: DeliveryCompletion;
  /** What the attempt log keeps of it; less than all of it only after the database refused the whole (see `lessLogged`). */
  logged?: AttemptLogging;
}

/**
 * What the attempt log keeps of a result: `whole`; `bare`, without the answer and the error text
 * (`REFUSED_TEXT_NOTE` in their place); `none`, no attempt row, the delivery counted and scheduled all the same.
 */
export type AttemptLogging = 'whole' | 'bare' | 'none';

/** The error an attempt row gets when the database refused the row with its answer and error text. */
export const REFUSED_TEXT_NOTE = 'The database refused the answer and error text of this attempt; the log of the worker gives its reason.';

/**
 * The same result to be written with less of it in the attempt log, after the database refused it
 * as it was; `null` when nothing less can be written, because there is no attempt row left to leave out.
 */
export function lessLogged(finished: FinishedAttempt): FinishedAttempt | null {
  const { result, logged = 'whole' } = finished;
  if (result === null || logged === 'none') return null;
  const hasText = Boolean(result.responseBody) || Boolean(result.error);
  return { ...finished, logged: logged === 'whole' && hasText ? 'bare' : 'none' };
}

/** The space's default identity while it is live: deactivated, it still signs, with the keys its receivers know. */
function liveSpaceDefault(spaceId: number) {
  return { linkedSpaceId: spaceId, spaceDefault: true, state: In([...LIVE_STATES]) };
}

/** What a MySQL or MariaDB TEXT column holds. */
const MYSQL_TEXT_MAX_BYTES = 65_535;

/** The attempt log's columns as the dispatcher writes them, with their PostgreSQL array types. */
const ATTEMPT_COLUMNS: [property: string, postgresType: string][] = [
  ['deliveryId', 'int'],
  ['linkedSpaceId', 'int'],
  ['listenerId', 'int'],
  ['attemptNumber', 'int'],
  ['startedAt', 'bigint'],
  ['durationMs', 'int'],
  ['statusCode', 'int'],
  ['outcome', 'text'],
  ['responseBody', 'text'],
  ['error', 'text'],
];

/** The dispatcher's reads and writes: claiming under a lease, loading, writing results back in batches. */
@Injectable()
export class DeliveryStore {
  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly keyEncryption: KeyEncryptionService,
  ) {
    this.sql = new SqlText(dataSource);
  }

  private readonly sql: SqlText;
  /** A quoted column of webhook_delivery. */
  private readonly column = (property: string) => this.sql.column(WebhookDelivery, property);
  private readonly createdOnColumn = this.dataSource.getMetadata(WebhookEvent).findColumnWithPropertyName('createdOn')!;
  private readonly keysByKeyId = new Map<string, { value: Promise<StoredIdentityKeys>; until: number }>();
  private readonly defaultKeysBySpace = new Map<number, { value: Promise<StoredIdentityKeys>; until: number }>();

  /**
   * Leases up to `limit` due deliveries to `owner` and loads what sending them needs: at most
   * `roomPerUrl(urlId)` per URL and none of `skippedUrlIds`. Candidates are read first without locks
   * and only those taken are then locked, skipping rows another instance holds (`FOR UPDATE SKIP
   * LOCKED`; SQLite has a single writer). `limitedUrlIds` are the URLs that had more due than their room.
   */
  async claim(
    owner: string,
    limit: number,
    leaseMs: number,
    skippedUrlIds: readonly number[],
    roomPerUrl: (urlId: number) => number,
  ): Promise<{ deliveries: ClaimedDelivery[]; limitedUrlIds: number[] }> {
    if (this.sql.postgres) {
      const now = Date.now();
      const candidates = await this.postgresCandidates(now, limit, skippedUrlIds);
      const { chosen, limitedUrlIds } = withinRoomPerUrl(candidates, roomPerUrl);
      if (chosen.length === 0) return { deliveries: [], limitedUrlIds };
      // One statement locks, leases and reads them: no transaction to open and commit around it.
      const leaseUntil = now + leaseMs;
      const [lease, parameters] = this.leaseStatement(owner, chosen, now, leaseUntil, 'RETURNING *');
      const rows = await this.dataSource.query(
        ...this.sql.statement(`WITH claimed AS (${lease}) ${this.deliveriesWithContext('claimed')}`, parameters),
      );
      return { deliveries: rows.map((row: ObjectLiteral) => this.claimedDelivery(row, leaseUntil)), limitedUrlIds };
    }
    const { ids, leaseUntil, limitedUrlIds } = await runTransactionSteps(this.dataSource, () =>
      this.leaseSteps(owner, limit, leaseMs, skippedUrlIds, roomPerUrl),
    );
    try {
      return { deliveries: await this.load(ids, leaseUntil), limitedUrlIds };
    } catch (error) {
      await this.release(
        owner,
        ids.map((id) => ({ id, leaseUntil })),
      ).catch(() => undefined);
      throw error;
    }
  }

  /** Leases in a transaction of its own, for databases that cannot return the rows an update changed with their context. */
  private *leaseSteps(
    owner: string,
    limit: number,
    leaseMs: number,
    skippedUrlIds: readonly number[],
    roomPerUrl: (urlId: number) => number,
  ): TransactionSteps<{ ids: number[]; leaseUntil: number; limitedUrlIds: number[] }> {
    const now = Date.now();
    const leaseUntil = now + leaseMs;
    const { rows: candidates } = yield this.candidatesStatement(now, limit, skippedUrlIds);
    const { chosen, limitedUrlIds } = withinRoomPerUrl(candidates as { id: number | string; url_id: number | string }[], roomPerUrl);
    if (chosen.length === 0) return { ids: [], leaseUntil, limitedUrlIds };
    // SQLite has a single writer: the candidates just read in this transaction are still due.
    const ids = this.sql.sqlite ? chosen : (yield this.sql.statement(...this.lockStatement(chosen, now))).rows.map((row) => Number(row.id));
    if (ids.length > 0) yield this.sql.statement(...this.leaseStatement(owner, ids, now, leaseUntil));
    return { ids, leaseUntil, limitedUrlIds };
  }

  /** Locks those of `ids` that are still due, skipping rows another instance holds. */
  private lockStatement(ids: number[], now: number): Statement {
    const d = this.column;
    const b = this.sql.builder();
    return b.done(
      `SELECT ${d('id')} AS id FROM ${this.sql.table(WebhookDelivery)} WHERE ${b.inIntegers(d('id'), ids)} AND ${this.due(b, now)}${this.sql.skipLocked}`,
    );
  }

  /**
   * The candidates read in due order along the due index, which stops after `limit` rows. Planned
   * from statistics that count few pending deliveries (the usual case, or a table not analyzed
   * since it filled), PostgreSQL would instead collect every due row and sort them: each claim
   * would then read the whole backlog, just when there is one.
   */
  private async postgresCandidates(
    now: number,
    limit: number,
    skippedUrlIds: readonly number[],
  ): Promise<{ id: string; url_id: string }[]> {
    // The settings and the read in one round trip: the database runs them in one transaction, which
    // ends the settings with it. As a transaction of its own it took four (begin, settings, read, commit).
    const rows = await lastRowsOfOneTransaction(this.dataSource, [
      `SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)`,
      // In a simple-protocol query nothing can be bound: on PostgreSQL the builder writes every integer inline.
      this.candidatesSql(this.sql.builder(), now, limit, skippedUrlIds, `'${WebhookDeliveryState.PENDING}'`),
    ]);
    return rows as { id: string; url_id: string }[];
  }

  /** Due deliveries: pending (the state bound, unless given as `pendingLiteral`), due by now, and not leased (or their lease ran out). */
  private due(b: StatementBuilder, now: number, pendingLiteral?: string): string {
    const d = this.column;
    return (
      `${d('state')} = ${pendingLiteral ?? b.bind(WebhookDeliveryState.PENDING)} AND ${d('nextAttemptAt')} <= ${b.integer(now)}` +
      ` AND (${d('leaseUntil')} IS NULL OR ${d('leaseUntil')} < ${b.integer(now)})`
    );
  }

  private candidatesStatement(now: number, limit: number, skippedUrlIds: readonly number[]): Statement {
    const b = this.sql.builder();
    return this.sql.statement(...b.done(this.candidatesSql(b, now, limit, skippedUrlIds)));
  }

  private candidatesSql(
    b: StatementBuilder,
    now: number,
    limit: number,
    skippedUrlIds: readonly number[],
    pendingLiteral?: string,
  ): string {
    const d = this.column;
    return (
      `SELECT ${d('id')} AS id, ${d('urlId')} AS url_id FROM ${this.sql.table(WebhookDelivery)} WHERE ${this.due(b, now, pendingLiteral)}` +
      (skippedUrlIds.length > 0 ? ` AND NOT ${b.inIntegers(d('urlId'), skippedUrlIds)}` : '') +
      ` ORDER BY ${d('nextAttemptAt')} ASC LIMIT ${b.integer(limit)}`
    );
  }

  /**
   * The update that leases `ids`, with `?` placeholders. On PostgreSQL it locks the rows itself and
   * skips those that another instance holds or that are no longer due (the caller locked them otherwise).
   */
  private leaseStatement(owner: string, ids: number[], now: number, leaseUntil: number, returning = ''): Statement {
    const d = this.column;
    const table = this.sql.table(WebhookDelivery);
    const b = this.sql.builder();
    // Moving the due time to the lease's end takes the row out of the due range of the index, so
    // that claims do not scan past deliveries in flight; an expired lease makes it due again.
    const set = `${this.sql.update(WebhookDelivery)} SET ${d('leaseOwner')} = ${b.bind(owner)}, ${d('leaseUntil')} = ${b.integer(leaseUntil)}, ${d('nextAttemptAt')} = ${b.integer(leaseUntil)}`;
    if (!this.sql.postgres) return b.done(`${set} WHERE ${b.inIntegers(d('id'), ids)}`);
    // Each id is looked up by primary key and the update finds its rows by their physical address,
    // whatever the table's statistics say: planned from the due index instead, every claim read
    // past the whole backlog. A row changed by another transaction while this statement ran is left
    // out (its new version is not at the address locked); a later claim takes it.
    return b.done(
      `${set} WHERE ctid = ANY(ARRAY(SELECT l.ctid FROM unnest(${b.bind(integerArray(ids))}::int[]) AS wanted(id_) CROSS JOIN LATERAL` +
        ` (SELECT ctid FROM ${table} WHERE ${d('id')} = wanted.id_ AND ${this.due(b, now)}${this.sql.skipLocked}) l)) ${returning}`,
    );
  }

  private async load(ids: number[], leaseUntil: number): Promise<ClaimedDelivery[]> {
    if (ids.length === 0) return [];
    const b = this.sql.builder();
    const rows: ObjectLiteral[] = await this.dataSource.query(
      ...this.sql.statement(
        ...b.done(
          `${this.deliveriesWithContext(this.sql.table(WebhookDelivery))} WHERE ${b.inIntegers(this.sql.column(WebhookDelivery, 'id', 'd'), ids)}`,
        ),
      ),
    );
    return rows.map((row) => this.claimedDelivery(row, leaseUntil));
  }

  /** Deliveries of `source` (a table, or a query's name) with their event, listener, URL and the key id that signs them. */
  private deliveriesWithContext(source: string): string {
    const column = this.sql.column.bind(this.sql);
    const table = this.sql.table.bind(this.sql);
    return (
      `SELECT ${column(WebhookDelivery, 'id', 'd')} AS id, ${column(WebhookDelivery, 'attempts', 'd')} AS attempts,` +
      ` ${column(WebhookDelivery, 'eventId', 'd')} AS event_id, ${column(WebhookDelivery, 'listenerId', 'd')} AS listener_id,` +
      ` ${column(WebhookDelivery, 'urlId', 'd')} AS url_id, ${column(WebhookDelivery, 'linkedSpaceId', 'd')} AS space_id,` +
      ` ${column(WebhookEvent, 'entityName', 'e')} AS entity_name, ${column(WebhookEvent, 'listenerEntityId', 'e')} AS listener_entity_id,` +
      ` ${column(WebhookEvent, 'entityId', 'e')} AS entity_id, ${column(WebhookEvent, 'state', 'e')} AS entity_state,` +
      ` ${column(WebhookEvent, 'occurredAt', 'e')} AS event_occurred_at,` +
      // Only where it is needed: the drivers of PostgreSQL, MySQL and MariaDB make a Date of every timestamp they read.
      ` CASE WHEN ${column(WebhookEvent, 'occurredAt', 'e')} IS NULL THEN ${column(WebhookEvent, 'createdOn', 'e')} END AS event_created_on,` +
      ` ${column(WebhookUrl, 'url', 'u')} AS url, ${column(WebhookUrl, 'state', 'u')} AS url_state,` +
      ` ${column(WebhookListener, 'state', 'l')} AS listener_state, ${column(WebhookListener, 'enablePayloadSignatureAndState', 'l')} AS signed,` +
      ` ${column(WebhookIdentity, 'keyId', 'i')} AS key_id` +
      ` FROM ${source} d` +
      ` LEFT JOIN ${table(WebhookEvent)} e ON ${column(WebhookEvent, 'id', 'e')} = ${column(WebhookDelivery, 'eventId', 'd')}` +
      ` LEFT JOIN ${table(WebhookListener)} l ON ${column(WebhookListener, 'id', 'l')} = ${column(WebhookDelivery, 'listenerId', 'd')}` +
      ` LEFT JOIN ${table(WebhookUrl)} u ON ${column(WebhookUrl, 'id', 'u')} = ${column(WebhookDelivery, 'urlId', 'd')}` +
      ` LEFT JOIN ${table(WebhookIdentity)} i ON ${column(WebhookIdentity, 'id', 'i')} = ${column(WebhookListener, 'identity', 'l')}`
    );
  }

  private claimedDelivery(row: ObjectLiteral, leaseUntil: number): ClaimedDelivery {
    return {
      id: Number(row.id),
      attempts: Number(row.attempts),
      eventId: Number(row.event_id),
      listenerId: Number(row.listener_id),
      urlId: Number(row.url_id),
      spaceId: Number(row.space_id),
      entityName: row.entity_name,
      listenerEntityId: Number(row.listener_entity_id),
      entityId: row.entity_id,
      state: row.entity_state,
      eventOccurredAt: this.eventOccurredAt(row),
      url: row.url,
      // A URL or event removed while a delivery still pointed at it must not leave the delivery leased again and again.
      sendable:
        row.listener_state === CreationEntityState.ACTIVE && row.url_state === CreationEntityState.ACTIVE && row.entity_name != null,
      signed: row.signed === true || Number(row.signed) === 1,
      keyId: row.key_id ?? null,
      leaseUntil,
      // Present from the start, so that every delivery keeps one shape when its request is prepared.
      prepared: undefined,
    };
  }

  /** Events recorded before `occurredAt` existed have only their `createdOn`, read in the application's time zone. */
  private eventOccurredAt(row: ObjectLiteral): number {
    if (row.event_occurred_at !== null && row.event_occurred_at !== undefined) return Number(row.event_occurred_at);
    const createdOn: Date | null = this.dataSource.driver.prepareHydratedValue(row.event_created_on, this.createdOnColumn);
    return createdOn?.getTime() ?? 0;
  }

  /** SQLite's journal mode (`delete`, `wal`, `memory`, …); `null` on other databases. */
  async sqliteJournalMode(): Promise<string | null> {
    if (!this.sql.sqlite) return null;
    const [row]: { journal_mode: string }[] = await this.dataSource.query('PRAGMA journal_mode');
    return row.journal_mode.toLowerCase();
  }

  /**
   * The sealed keys of the identity a delivery was claimed with, by the key id it had then: as the
   * identity is now, if a rotation has retired that key since, so that a request signed again after
   * a rotation carries the new key (and, in the grace period, the old secret beside the new one).
   */
  identityKeys(keyId: string): Promise<StoredIdentityKeys> {
    return this.remembered(this.keysByKeyId, keyId, () => this.currentKeysOf(keyId), KEYS_TTL_MS);
  }

  private async currentKeysOf(keyId: string): Promise<StoredIdentityKeys> {
    const manager = this.dataSource.manager;
    const current = await this.identityWithKeys(manager).where({ keyId }).getOne();
    if (current) return this.withRetiredSecrets(manager, current);
    const retired = await manager.findOneOrFail(WebhookRetiredKey, { select: { identityId: true }, where: { keyId } });
    return this.withRetiredSecrets(manager, await this.identityWithKeys(manager).where({ id: retired.identityId }).getOneOrFail());
  }

  /** The keys of the identity signing for listeners of a space that name none. */
  spaceDefaultKeys(spaceId: number): Promise<StoredIdentityKeys> {
    return this.remembered(this.defaultKeysBySpace, spaceId, () => this.findOrCreateSpaceDefault(spaceId), KEYS_TTL_MS);
  }

  /** Reads identities' keys again on next need: this instance changed one (rotated it, deleted it). */
  forgetKeysOf(identity: { spaceDefault: boolean; linkedSpaceId: number }): void {
    this.keysByKeyId.clear();
    if (identity.spaceDefault) this.defaultKeysBySpace.delete(identity.linkedSpaceId);
  }

  private remembered<K, V>(
    cache: Map<K, { value: Promise<V>; until: number }>,
    key: K,
    load: () => Promise<V>,
    ttlMs = Infinity,
  ): Promise<V> {
    const now = Date.now();
    const kept = cache.get(key);
    if (kept && kept.until > now) return kept.value;
    const value = load();
    setNewest(cache, key, { value, until: now + ttlMs }, KEY_CACHE_SIZE);
    value.catch(() => cache.delete(key));
    return value;
  }

  /** The identity signing for listeners of a space that name none; created on first need. */
  private async findOrCreateSpaceDefault(spaceId: number): Promise<StoredIdentityKeys> {
    const existing = await this.findSpaceDefault(this.dataSource.manager, spaceId);
    if (existing) return existing;
    const find = this.dataSource
      .createQueryBuilder(WebhookIdentity, 'i')
      .select('i.id', 'id')
      .where(liveSpaceDefault(spaceId))
      .limit(1)
      .getQueryAndParameters();
    const create = this.dataSource
      .createQueryBuilder()
      .insert()
      .into(WebhookIdentity)
      .values({
        linkedSpaceId: spaceId,
        spaceDefault: true,
        state: CreationEntityState.ACTIVE,
        name: 'Default',
        ...this.keyEncryption.newSealedKeys(),
      })
      .getQueryAndParameters();
    // Under a lock: two instances meeting a new space at once would each make one, and sign with their own.
    await runTransactionSteps(
      this.dataSource,
      function* () {
        const { rows } = yield find;
        if (rows.length === 0) yield create;
      },
      `space-default:${spaceId}`,
    );
    // This instance's identity, or the one another instance made first.
    return (await this.findSpaceDefault(this.dataSource.manager, spaceId))!;
  }

  /**
   * Writes attempts and delivery states of a batch of finished attempts, all or nothing, for the
   * deliveries whose lease this instance still holds; returns their ids. A delivery whose lease ran
   * out meanwhile (an outage, a lease too short) was taken up by another claim: its attempt here is
   * neither logged nor counted, and its outcome is that claim's to announce.
   */
  async complete(owner: string, finished: FinishedAttempt[]): Promise<Set<number>> {
    if (finished.length === 0) return new Set();
    const now = Date.now();
    const byKind = (kind: DeliveryCompletion['kind']) => finished.filter((f) => f.completion.kind === kind);
    const endings = [
      this.finish(owner, byKind('succeeded'), WebhookDeliveryState.SUCCEEDED, now, true),
      this.finish(owner, byKind('abandoned'), WebhookDeliveryState.ABANDONED, now, true),
      this.finish(owner, byKind('cancelled'), WebhookDeliveryState.CANCELLED, now, false),
      this.reschedule(owner, byKind('retry')),
    ].filter((statement): statement is Statement => statement !== null);
    if (this.sql.postgres) return this.completeInOneStatement(finished, endings);
    const held = this.leasesHeld(
      owner,
      finished.map((f) => f.delivery),
    );
    const insertAttempts = (ids: Set<number>) => this.insertAttempts(finished.filter((f) => ids.has(f.delivery.id)));
    return runTransactionSteps(this.dataSource, function* () {
      const { rows } = yield held;
      const ids = new Set(rows.map((row) => Number(row.id)));
      if (ids.size === 0) return ids;
      const attempts = insertAttempts(ids);
      // Attempts first, as the retention job deletes them first.
      if (attempts) yield attempts;
      for (const ending of endings) yield ending;
      return ids;
    });
  }

  /**
   * On PostgreSQL the endings report the deliveries whose lease was held, and only their attempts are
   * inserted: one statement of data-modifying WITH queries, which needs no transaction around it.
   */
  private async completeInOneStatement(finished: FinishedAttempt[], endings: Statement[]): Promise<Set<number>> {
    const id = this.column('id');
    const parts = endings.map(([sql], index) => `e${index} AS (${sql} RETURNING ${id} AS id)`);
    parts.push(`held AS (${endings.map((_, index) => `SELECT id FROM e${index}`).join(' UNION ALL ')})`);
    const attempts = this.insertAttempts(finished, 'held');
    if (attempts) parts.push(`attempts AS (${attempts[0]})`);
    const rows: { id: number | string }[] = await this.dataSource.query(
      ...this.sql.statement(`WITH ${parts.join(', ')} SELECT id FROM held`, [
        ...endings.flatMap(([, values]) => values),
        ...(attempts?.[1] ?? []),
      ]),
    );
    return new Set(rows.map((row) => Number(row.id)));
  }

  /** Gives leased deliveries back without an attempt, e.g. at shutdown: due again at once. */
  async release(owner: string, leased: readonly Leased[], dueAt = Date.now()): Promise<void> {
    if (leased.length === 0) return;
    const [sql, values] = this.endLease(owner, leased, (b) => `${this.column('nextAttemptAt')} = ${b.integer(dueAt)}`);
    // One statement: on PostgreSQL it needs no transaction around it. `?` placeholders are the driver's own elsewhere.
    if (this.sql.postgres) await this.dataSource.query(...this.sql.statement(sql, values));
    else await writeAll(this.dataSource, [[sql, values]]);
  }

  /** On PostgreSQL, `onlyDeliveriesIn` names a WITH query of delivery ids: the rows of other deliveries are left out. */
  private insertAttempts(finished: FinishedAttempt[], onlyDeliveriesIn?: string): Statement | null {
    const attempted = finished.filter((f) => f.result !== null && f.logged !== 'none');
    if (attempted.length === 0) return null;
    const rows = attempted.map(({ delivery, result, logged }) => [
      delivery.id,
      delivery.spaceId,
      delivery.listenerId,
      delivery.attempts + 1,
      result!.startedAt,
      result!.durationMs,
      result!.statusCode,
      result!.outcome,
      logged === 'bare' ? null : this.storableText(result!.responseBody),
      logged === 'bare' ? REFUSED_TEXT_NOTE : this.storableText(result!.error),
    ]);
    const into = `${this.sql.insertInto(WebhookDeliveryAttempt)} (${ATTEMPT_COLUMNS.map(([property]) => this.sql.column(WebhookDeliveryAttempt, property)).join(', ')})`;
    if (this.sql.postgres) {
      // One array per column: the statement's text, parameters and plan keep one size whatever the batch's.
      const arrays = ATTEMPT_COLUMNS.map(([, type]) => `?::${type}[]`);
      const columns = ATTEMPT_COLUMNS.map(([, type], column) => {
        const values = rows.map((row) => row[column]);
        return type === 'text' ? values : integerArray(values as (number | null)[]);
      });
      const rowsOf = `SELECT * FROM unnest(${arrays.join(', ')}) AS attempt (${ATTEMPT_COLUMNS.map((_, column) => `c${column}`).join(', ')})`;
      const held = onlyDeliveriesIn ? ` WHERE c0 IN (SELECT id FROM ${onlyDeliveriesIn})` : '';
      return [`${into} ${rowsOf}${held}`, columns];
    }
    if (this.sql.sqlite) {
      // The rows as one JSON array: one text whatever the batch's size (see StatementBuilder).
      const cells = ATTEMPT_COLUMNS.map((_, column) => `json_extract(value, '$[${column}]')`);
      return [`${into} SELECT ${cells.join(', ')} FROM json_each(?)`, [JSON.stringify(rows)]];
    }
    const b = this.sql.builder();
    const values = rows.map((row) => {
      const cells = row.map((value, column) => {
        if (ATTEMPT_COLUMNS[column][1] === 'text') return b.bind(value);
        return value === null ? 'NULL' : b.integer(value as number);
      });
      return `(${cells.join(', ')})`;
    });
    return b.done(`${into} VALUES ${values.join(', ')}`);
  }

  /**
   * An answer or error as every database's column can hold it; one that a column could not hold
   * would fail the whole batch of results. PostgreSQL's text cannot hold NUL, and MySQL's TEXT holds
   * 65 535 bytes: less than `maxResponseBytes` may be, and an answer's invalid bytes decode to three each.
   */
  private storableText(text: string | null): string | null {
    if (text === null) return null;
    const withoutNul = text.replace(/\u0000/g, '');
    return this.sql.postgres || this.sql.sqlite ? withoutNul : cutToUtf8Bytes(withoutNul, MYSQL_TEXT_MAX_BYTES);
  }

  private finish(
    owner: string,
    finished: FinishedAttempt[],
    state: WebhookDeliveryState,
    now: number,
    attempted: boolean,
  ): Statement | null {
    if (finished.length === 0) return null;
    const d = this.column;
    return this.endLease(
      owner,
      finished.map((f) => f.delivery),
      (b) =>
        `${d('state')} = ${b.bind(state)}, ${d('completedAt')} = ${b.integer(now)}, ${d('nextAttemptAt')} = ${b.integer(now)}` +
        (attempted ? `, ${d('attempts')} = ${d('attempts')} + 1` : ''),
    );
  }

  private reschedule(owner: string, finished: FinishedAttempt[]): Statement | null {
    if (finished.length === 0) return null;
    const d = this.column;
    return this.endLease(
      owner,
      finished.map((f) => f.delivery),
      () => `${d('attempts')} = ${d('attempts')} + 1`,
      finished.map((f) => (f.completion as { nextAttemptAt: number }).nextAttemptAt),
    );
  }

  /**
   * Writes `changes` and ends the lease of those `leased` deliveries whose lease `owner` still holds.
   * `dueAt`, when given, is each delivery's new due time, in the order of `leased`.
   */
  private endLease(
    owner: string,
    leased: readonly Leased[],
    changes: (b: StatementBuilder) => string,
    dueAt?: readonly number[],
  ): Statement {
    const d = this.column;
    const b = this.sql.builder();
    // In the order of the text, which is the order the builder binds in.
    const set = `${this.sql.update(WebhookDelivery)} SET ${changes(b)}, ${d('leaseOwner')} = NULL, ${d('leaseUntil')} = NULL`;
    const due = dueAt
      ? `, ${d('nextAttemptAt')} = CASE ${d('id')} ${dueAt.map((at, index) => `WHEN ${b.integer(leased[index].id)} THEN ${b.integer(at)}`).join(' ')} END`
      : '';
    return b.done(`${set}${due} WHERE ${this.leaseCondition(b, owner, leased)}`);
  }

  /** The ids of those `leased` deliveries whose lease `owner` still holds, locked until the transaction ends (MySQL, MariaDB). */
  private leasesHeld(owner: string, leased: readonly Leased[]): Statement {
    const b = this.sql.builder();
    const lock = this.sql.sqlite ? '' : ' FOR UPDATE';
    return b.done(
      `SELECT ${this.column('id')} AS id FROM ${this.sql.table(WebhookDelivery)} WHERE ${this.leaseCondition(b, owner, leased)}${lock}`,
    );
  }

  /**
   * The rows of those `leased` deliveries whose lease `owner` still holds: the lease's end tells a
   * lease apart from a later one of the same delivery. The rows are found by id, grouped by lease (a
   * batch holds the leases of a few claims): joined to a list of ids and leases instead, PostgreSQL
   * planned from statistics that count few leased rows compared every row of the list with every
   * leased row.
   */
  private leaseCondition(b: StatementBuilder, owner: string, leased: readonly Leased[]): string {
    const d = this.column;
    const idsByLease = new Map<number, number[]>();
    for (const { id, leaseUntil } of leased) addToGroup(idsByLease, leaseUntil, id);
    // From left to right, the order the builder binds in.
    const byOwner = `${d('leaseOwner')} = ${b.bind(owner)}`;
    const byLease = [...idsByLease].map(
      ([leaseUntil, ids]) => `(${d('leaseUntil')} = ${b.integer(leaseUntil)} AND ${b.inIntegers(d('id'), ids)})`,
    );
    return `${byOwner} AND (${byLease.join(' OR ')})`;
  }

  private async findSpaceDefault(manager: EntityManager, spaceId: number): Promise<StoredIdentityKeys | null> {
    const found = await this.identityWithKeys(manager).where(liveSpaceDefault(spaceId)).orderBy('i.id', 'ASC').getOne();
    return found && this.withRetiredSecrets(manager, found);
  }

  /** Identities with their sealed private key and secret, which reads never select. */
  private identityWithKeys(manager: EntityManager) {
    return manager.createQueryBuilder(WebhookIdentity, 'i').addSelect(['i.privateKey', 'i.secret']);
  }

  /** An identity's sealed keys, with the secrets of its retired keys that still sign. */
  private async withRetiredSecrets(manager: EntityManager, identity: WebhookIdentity): Promise<StoredIdentityKeys> {
    const retired = await manager
      .createQueryBuilder(WebhookRetiredKey, 'r')
      .addSelect('r.secret')
      .where('r.identityId = :id AND r.signsUntil > :now', { id: identity.id, now: Date.now() })
      .getMany();
    return {
      keyId: identity.keyId,
      privateKey: identity.privateKey!,
      secret: identity.secret!,
      retiredSecrets: retired.map(({ keyId, secret, signsUntil }) => ({ keyId, secret: secret!, signsUntil })),
    };
  }
}

/** Candidates in due order, keeping to each URL's room; and the URLs that had more than their room. */
function withinRoomPerUrl(
  candidates: { id: number | string; url_id: number | string }[],
  roomPerUrl: (urlId: number) => number,
): { chosen: number[]; limitedUrlIds: number[] } {
  const taken = new Map<number, number>();
  const limited = new Set<number>();
  const chosen: number[] = [];
  for (const candidate of candidates) {
    const urlId = Number(candidate.url_id);
    const count = taken.get(urlId) ?? 0;
    if (count >= roomPerUrl(urlId)) {
      limited.add(urlId);
      continue;
    }
    taken.set(urlId, count + 1);
    chosen.push(Number(candidate.id));
  }
  return { chosen, limitedUrlIds: [...limited] };
}

/** The longest prefix of `text` whose UTF-8 encoding fits in `maxBytes`, cut between characters. */
function cutToUtf8Bytes(text: string, maxBytes: number): string {
  // A UTF-16 code unit takes at most three bytes in UTF-8.
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Back to the first byte of the character the cut would split (continuation bytes are 10xxxxxx).
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
