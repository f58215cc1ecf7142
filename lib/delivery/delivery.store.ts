import { Inject, Injectable } from '@nestjs/common';
import { In, type DataSource, type EntityManager, type ObjectLiteral } from 'typeorm';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookDeliveryAttempt } from '../model/webhook-delivery-attempt.entity.js';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookEvent } from '../model/webhook-event.entity.js';
import { WebhookIdentity } from '../model/webhook-identity.entity.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { inTransaction, isSqlite } from '../persistence/transaction.js';
import type { StoredIdentityKeys } from '../signing/webhook-signer.service.js';
import { KeyEncryptionService } from '../signing/key-encryption.service.js';
import type { AttemptResult } from './http-sender.js';

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
  eventCreatedOn: Date;
  url: string;
  listenerActive: boolean;
  signed: boolean;
  keys: StoredIdentityKeys | null;
}

/** How a finished attempt changes its delivery. */
export type DeliveryCompletion =
  { kind: 'succeeded' } | { kind: 'retry'; nextAttemptAt: number } | { kind: 'abandoned' } | { kind: 'cancelled' };

export interface FinishedAttempt {
  delivery: ClaimedDelivery;
  /** `null` for a delivery cancelled without an attempt. */
  result: AttemptResult | null;
  completion: DeliveryCompletion;
}

/** The dispatcher's reads and writes: claiming under a lease, loading, writing results back in batches. */
@Injectable()
export class DeliveryStore {
  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly keyEncryption: KeyEncryptionService,
  ) {}

  /**
   * Leases up to `limit` due deliveries to `owner`, at most `roomPerUrl(urlId)` per URL, skipping
   * rows other instances hold (`FOR UPDATE SKIP LOCKED`; SQLite has a single writer).
   */
  async claim(
    owner: string,
    limit: number,
    leaseMs: number,
    busyUrlIds: readonly number[],
    roomPerUrl: (urlId: number) => number,
  ): Promise<{ ids: number[]; more: boolean }> {
    return inTransaction(this.dataSource, async (manager) => {
      const now = Date.now();
      const skipLocked = isSqlite(this.dataSource) ? '' : ' FOR UPDATE SKIP LOCKED';
      const select = manager
        .createQueryBuilder()
        .select('d.id', 'id')
        .addSelect('d.urlId', 'urlId')
        .from(WebhookDelivery, 'd')
        .where('d.state = :pending', { pending: WebhookDeliveryState.PENDING })
        .andWhere('d.nextAttemptAt <= :now', { now })
        .andWhere('(d.leaseUntil IS NULL OR d.leaseUntil < :now)')
        .orderBy('d.nextAttemptAt', 'ASC')
        .limit(Math.floor(limit * 2));
      if (busyUrlIds.length > 0) select.andWhere('d.urlId NOT IN (:...busy)', { busy: [...busyUrlIds] });
      // The row lock goes on as text: TypeORM's own lock modes differ between its versions and drivers.
      const [query, parameters] = select.getQueryAndParameters();
      const candidates: { id: number | string; urlId: number | string }[] = await manager.query(query + skipLocked, parameters);
      const taken = new Map<number, number>();
      const ids: number[] = [];
      for (const candidate of candidates) {
        const urlId = Number(candidate.urlId);
        const count = taken.get(urlId) ?? 0;
        if (ids.length >= limit || count >= roomPerUrl(urlId)) continue;
        taken.set(urlId, count + 1);
        ids.push(Number(candidate.id));
      }
      if (ids.length > 0) {
        await manager
          .createQueryBuilder()
          .update(WebhookDelivery)
          .set({ leaseOwner: owner, leaseUntil: now + leaseMs })
          .where({ id: In(ids) })
          .execute();
      }
      return { ids, more: ids.length >= limit || candidates.length > ids.length };
    });
  }

  async load(ids: number[]): Promise<ClaimedDelivery[]> {
    if (ids.length === 0) return [];
    const qb = this.dataSource.manager
      .createQueryBuilder(WebhookDelivery, 'd')
      .innerJoin(WebhookEvent, 'e', 'e.id = d.eventId')
      .innerJoin('webhook_listener', 'l', `l.id = d.listenerId`)
      .innerJoin('webhook_url', 'u', 'u.id = d.urlId')
      .leftJoin(WebhookIdentity, 'i', 'i.id = l.identityId')
      .where({ id: In(ids) });
    const column = (alias: string, name: string, as: string) => `${qb.escape(alias)}.${qb.escape(name)} AS ${qb.escape(as)}`;
    qb.select([
      column('d', 'id', 'id'),
      column('d', 'attempts', 'attempts'),
      column('d', 'eventId', 'eventId'),
      column('d', 'listenerId', 'listenerId'),
      column('d', 'urlId', 'urlId'),
      column('d', 'linkedSpaceId', 'spaceId'),
      column('e', 'entityName', 'entityName'),
      column('e', 'listenerEntityId', 'listenerEntityId'),
      column('e', 'entityId', 'entityId'),
      column('e', 'state', 'state'),
      column('e', 'createdOn', 'eventCreatedOn'),
      column('u', 'url', 'url'),
      column('l', 'state', 'listenerState'),
      column('l', 'enablePayloadSignatureAndState', 'signed'),
      column('i', 'keyId', 'keyId'),
      column('i', 'privateKey', 'privateKey'),
      column('i', 'secret', 'secret'),
    ]);
    const createdOnColumn = this.dataSource.getMetadata(WebhookEvent).findColumnWithPropertyName('createdOn')!;
    const rows: ObjectLiteral[] = await qb.getRawMany();
    return rows.map((row) => ({
      id: Number(row.id),
      attempts: Number(row.attempts),
      eventId: Number(row.eventId),
      listenerId: Number(row.listenerId),
      urlId: Number(row.urlId),
      spaceId: Number(row.spaceId),
      entityName: row.entityName,
      listenerEntityId: Number(row.listenerEntityId),
      entityId: row.entityId,
      state: row.state,
      eventCreatedOn: this.dataSource.driver.prepareHydratedValue(row.eventCreatedOn, createdOnColumn),
      url: row.url,
      listenerActive: row.listenerState === CreationEntityState.ACTIVE,
      signed: row.signed === true || Number(row.signed) === 1,
      keys: row.keyId ? { keyId: row.keyId, privateKey: row.privateKey, secret: row.secret } : null,
    }));
  }

  /** The identity signing for listeners of a space that name none; created on first need. */
  async spaceDefaultKeys(spaceId: number): Promise<StoredIdentityKeys> {
    const existing = await this.findSpaceDefault(this.dataSource.manager, spaceId);
    if (existing) return existing;
    return inTransaction(this.dataSource, async (manager) => {
      const raced = await this.findSpaceDefault(manager, spaceId);
      if (raced) return raced;
      const keys = this.keyEncryption.newSealedKeys();
      await manager.save(
        manager.create(WebhookIdentity, {
          linkedSpaceId: spaceId,
          name: 'Default',
          state: CreationEntityState.ACTIVE,
          spaceDefault: true,
          ...keys,
        }),
      );
      return { keyId: keys.keyId, privateKey: keys.privateKey, secret: keys.secret };
    });
  }

  /** Writes attempts and delivery states of a batch of finished attempts in one transaction. */
  async complete(owner: string, finished: FinishedAttempt[]): Promise<void> {
    if (finished.length === 0) return;
    const now = Date.now();
    await inTransaction(this.dataSource, async (manager) => {
      const attempts = finished.filter((f) => f.result !== null);
      if (attempts.length > 0) {
        await manager
          .createQueryBuilder()
          .insert()
          .into(WebhookDeliveryAttempt)
          .values(
            attempts.map(({ delivery, result }) => ({
              deliveryId: delivery.id,
              linkedSpaceId: delivery.spaceId,
              listenerId: delivery.listenerId,
              attemptNumber: delivery.attempts + 1,
              startedAt: result!.startedAt,
              durationMs: result!.durationMs,
              outcome: result!.outcome,
              statusCode: result!.statusCode,
              responseBody: result!.responseBody,
              error: result!.error,
            })),
          )
          .updateEntity(false)
          .callListeners(false)
          .execute();
      }
      const byKind = (kind: DeliveryCompletion['kind']) => finished.filter((f) => f.completion.kind === kind);
      await this.finish(manager, owner, byKind('succeeded'), WebhookDeliveryState.SUCCEEDED, now, true);
      await this.finish(manager, owner, byKind('abandoned'), WebhookDeliveryState.ABANDONED, now, true);
      await this.finish(manager, owner, byKind('cancelled'), WebhookDeliveryState.CANCELLED, now, false);
      await this.reschedule(manager, owner, byKind('retry'));
    });
  }

  /** Gives deliveries back without an attempt, e.g. at shutdown. */
  async release(owner: string, ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await inTransaction(this.dataSource, (manager) =>
      manager
        .createQueryBuilder()
        .update(WebhookDelivery)
        .set({ leaseOwner: null, leaseUntil: null })
        .where({ id: In(ids), leaseOwner: owner })
        .execute(),
    );
  }

  private async finish(
    manager: EntityManager,
    owner: string,
    finished: FinishedAttempt[],
    state: WebhookDeliveryState,
    now: number,
    attempted: boolean,
  ): Promise<void> {
    if (finished.length === 0) return;
    const attempts = this.dataSource.driver.escape('attempts');
    await manager
      .createQueryBuilder()
      .update(WebhookDelivery)
      .set({ state, completedAt: now, leaseOwner: null, leaseUntil: null, ...(attempted && { attempts: () => `${attempts} + 1` }) })
      .where({ id: In(finished.map((f) => f.delivery.id)), leaseOwner: owner })
      .execute();
  }

  private async reschedule(manager: EntityManager, owner: string, finished: FinishedAttempt[]): Promise<void> {
    if (finished.length === 0) return;
    const q = (name: string) => this.dataSource.driver.escape(name);
    // Ids and times are integers the dispatcher computed, written inline: a bound parameter in a
    // CASE arm would need a cast whose spelling differs per database.
    const cases = finished.map(
      (f) => `WHEN ${safeInteger(f.delivery.id)} THEN ${safeInteger((f.completion as { nextAttemptAt: number }).nextAttemptAt)}`,
    );
    await manager
      .createQueryBuilder()
      .update(WebhookDelivery)
      .set({
        nextAttemptAt: () => `CASE ${q('id')} ${cases.join(' ')} END`,
        attempts: () => `${q('attempts')} + 1`,
        leaseOwner: null,
        leaseUntil: null,
      })
      .where({ id: In(finished.map((f) => f.delivery.id)), leaseOwner: owner })
      .execute();
  }

  private async findSpaceDefault(manager: EntityManager, spaceId: number): Promise<StoredIdentityKeys | null> {
    const found = await manager
      .createQueryBuilder(WebhookIdentity, 'i')
      .addSelect(['i.privateKey', 'i.secret'])
      .where({ linkedSpaceId: spaceId, spaceDefault: true, state: CreationEntityState.ACTIVE })
      .orderBy('i.id', 'ASC')
      .getOne();
    return found && { keyId: found.keyId, privateKey: found.privateKey!, secret: found.secret! };
  }
}

function safeInteger(value: number): string {
  if (!Number.isSafeInteger(value)) throw new Error(`not a safe integer: ${value}`);
  return String(value);
}
