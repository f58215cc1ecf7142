import { Inject, Injectable } from '@nestjs/common';
import { In, IsNull, LessThan, Not, Or, type DataSource, type EntityTarget, type ObjectLiteral } from 'typeorm';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookDeliveryAttempt } from '../model/webhook-delivery-attempt.entity.js';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookEvent } from '../model/webhook-event.entity.js';
import { WebhookIdentity } from '../model/webhook-identity.entity.js';
import { WebhookListener } from '../model/webhook-listener.entity.js';
import { WebhookUrl } from '../model/webhook-url.entity.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { SqlText } from '../persistence/sql-text.js';
import { deleteStatement, runTransactionSteps, updateStatement, writeAll } from '../persistence/transaction.js';
import { LIVE_STATES } from '../management/lifecycle.js';

/** Rows removed or changed per statement, so that no job holds large locks for long. */
export const MAINTENANCE_BATCH_SIZE = 500;
/** Batches one job run goes through at most; the next run goes on. */
export const MAINTENANCE_MAX_BATCHES = 40;

type ManagedTarget = typeof WebhookListener | typeof WebhookUrl | typeof WebhookIdentity;

/**
 * The statements of the scheduled jobs. Every change is conditional on the state it expects, so
 * instances running the same job at once do the work once and raise no errors.
 */
@Injectable()
export class MaintenanceStore {
  constructor(@Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource) {
    this.sql = new SqlText(dataSource);
  }

  private readonly sql: SqlText;

  /** Cancels the deliveries of DELETING listeners that are not in flight, batch by batch; returns how many. */
  async cancelDeliveriesOfDeletingListeners(now: number): Promise<number> {
    const listenerIds = await this.idsInState(WebhookListener, CreationEntityState.DELETING);
    if (listenerIds.length === 0) return 0;
    const cancellable = { state: WebhookDeliveryState.PENDING, leaseUntil: Or(IsNull(), LessThan(now)) };
    let cancelled = 0;
    for (let batch = 0; batch < MAINTENANCE_MAX_BATCHES; batch++) {
      const rows: { id: number | string }[] = await this.dataSource.manager
        .createQueryBuilder(WebhookDelivery, 'd')
        .select('d.id', 'id')
        .where({ listenerId: In(listenerIds), ...cancellable })
        .limit(MAINTENANCE_BATCH_SIZE)
        .getRawMany();
      if (rows.length === 0) break;
      const [changed] = await writeAll(this.dataSource, [
        updateStatement(
          this.dataSource,
          WebhookDelivery,
          { state: WebhookDeliveryState.CANCELLED, completedAt: now, nextAttemptAt: now },
          { id: In(rows.map((row) => Number(row.id))), ...cancellable },
        ),
      ]);
      cancelled += changed;
      if (rows.length < MAINTENANCE_BATCH_SIZE) break;
    }
    return cancelled;
  }

  /** DELETING listeners with nothing in flight; DELETING URLs and identities no live listener uses. */
  async finishableDeletions(target: ManagedTarget): Promise<{ id: number; linkedSpaceId: number; entity?: string }[]> {
    const qb = this.dataSource.manager
      .createQueryBuilder(target as EntityTarget<ObjectLiteral>, 'o')
      .where('o.state = :deleting', { deleting: CreationEntityState.DELETING });
    if (target === WebhookListener) {
      const d = (property: string) => this.sql.column(WebhookDelivery, property, 'd');
      qb.andWhere(
        `NOT EXISTS (SELECT 1 FROM ${this.sql.table(WebhookDelivery)} d WHERE ${d('listenerId')} = o.id AND ${d('state')} = :pending)`,
        {
          pending: WebhookDeliveryState.PENDING,
        },
      );
    } else {
      qb.andWhere(this.noListenerUsing(target, { liveOnly: true }), { live: [...LIVE_STATES] });
    }
    const rows = await qb.limit(MAINTENANCE_BATCH_SIZE).getMany();
    return rows.map((row) => ({ id: row.id, linkedSpaceId: row.linkedSpaceId, entity: (row as WebhookListener).entity }));
  }

  /**
   * Moves one object from DELETING to DELETED, to be purged `purgeAfterMs` from now by the database's
   * clock (as it keeps `createdOn` and `updatedOn`); false when another instance was first.
   */
  async markDeleted(target: ManagedTarget, id: number, purgeAfterMs: number): Promise<boolean> {
    const plannedPurgeDate = () => this.sql.databaseDateAtLeast(purgeAfterMs);
    const [marked] = await writeAll(this.dataSource, [
      updateStatement(
        this.dataSource,
        target,
        { state: CreationEntityState.DELETED, plannedPurgeDate },
        { id, state: CreationEntityState.DELETING },
      ),
    ]);
    return marked > 0;
  }

  /** Ids of DELETED objects past their purge date by the database's clock (URLs and identities: no listener row left that points at them). */
  async purgeable(target: ManagedTarget): Promise<number[]> {
    const qb = this.dataSource.manager
      .createQueryBuilder(target as EntityTarget<ObjectLiteral>, 'o')
      .select('o.id', 'id')
      .where('o.state = :deleted', { deleted: CreationEntityState.DELETED })
      .andWhere(`${this.sql.column(target as EntityTarget<ObjectLiteral>, 'plannedPurgeDate', 'o')} <= ${this.sql.databaseNowPlus(0)}`);
    if (target !== WebhookListener) {
      qb.andWhere(this.noListenerUsing(target, { liveOnly: false }));
    }
    const rows: { id: number | string }[] = await qb.limit(MAINTENANCE_BATCH_SIZE).getRawMany();
    return rows.map((row) => Number(row.id));
  }

  /**
   * Removes a listener's attempts and deliveries in batches, then the listener once none of its
   * deliveries is left (a later run goes on with a listener that had more).
   */
  async purgeListener(listenerId: number): Promise<{ deliveries: number; purged: boolean }> {
    let removed = 0;
    for (let batch = 0; batch < MAINTENANCE_MAX_BATCHES * 10; batch++) {
      const ids = await this.deliveryIds({ listenerId });
      if (ids.length === 0) {
        await writeAll(this.dataSource, [
          deleteStatement(this.dataSource, WebhookListener, { id: listenerId, state: CreationEntityState.DELETED }),
        ]);
        return { deliveries: removed, purged: true };
      }
      removed += await this.deleteDeliveries(ids, {});
    }
    return { deliveries: removed, purged: false };
  }

  async purgeObject(target: typeof WebhookUrl | typeof WebhookIdentity, id: number): Promise<void> {
    await writeAll(this.dataSource, [deleteStatement(this.dataSource, target, { id, state: CreationEntityState.DELETED })]);
  }

  /** Removes finished deliveries (and their attempts) completed before `cutoff`; returns how many, at most one run's worth. */
  async removeFinishedDeliveries(cutoff: number): Promise<number> {
    let removed = 0;
    for (let batch = 0; batch < MAINTENANCE_MAX_BATCHES; batch++) {
      const ids = await this.deliveryIds({
        state: In([WebhookDeliveryState.SUCCEEDED, WebhookDeliveryState.ABANDONED, WebhookDeliveryState.CANCELLED]),
        // A finished delivery's due time is when it finished: the due index finds them, and no index of their own
        // has to be kept up by every delivery.
        nextAttemptAt: LessThan(cutoff),
      });
      if (ids.length === 0) break;
      // completedAt, which a redeliver() empties, and which no index holds (see deleteDeliveries).
      removed += await this.deleteDeliveries(ids, { completedAt: LessThan(cutoff) });
      if (ids.length < MAINTENANCE_BATCH_SIZE) break;
    }
    return removed;
  }

  /**
   * Removes events recorded before `cutoff` (epoch ms) that no delivery refers to any more. Their
   * time is `occurredAt`: `createdOn`, a date without a time zone, holds the clock time of the
   * instance that wrote it, which another instance's zone would read hours off. Only events recorded
   * before `occurredAt` existed are told by their `createdOn`.
   */
  async removeOrphanEvents(cutoff: number): Promise<number> {
    let removed = 0;
    for (let batch = 0; batch < MAINTENANCE_MAX_BATCHES; batch++) {
      const rows: { id: number | string }[] = await this.dataSource.manager
        .createQueryBuilder(WebhookEvent, 'e')
        .select('e.id', 'id')
        .where('(e.occurredAt < :cutoff OR (e.occurredAt IS NULL AND e.createdOn < :cutoffDate))', {
          cutoff,
          cutoffDate: new Date(cutoff),
        })
        .andWhere(
          `NOT EXISTS (SELECT 1 FROM ${this.sql.table(WebhookDelivery)} d WHERE ${this.sql.column(WebhookDelivery, 'eventId', 'd')} = e.id)`,
        )
        .limit(MAINTENANCE_BATCH_SIZE)
        .getRawMany();
      if (rows.length === 0) break;
      const [events] = await writeAll(this.dataSource, [
        deleteStatement(this.dataSource, WebhookEvent, { id: In(rows.map((row) => Number(row.id))) }),
      ]);
      removed += events;
      if (rows.length < MAINTENANCE_BATCH_SIZE) break;
    }
    return removed;
  }

  private async idsInState(target: ManagedTarget, state: CreationEntityState): Promise<number[]> {
    const rows = await this.dataSource.manager.find(target as EntityTarget<{ id: number; state: string }>, {
      select: { id: true },
      where: { state },
      take: MAINTENANCE_BATCH_SIZE,
    });
    return rows.map((row) => row.id);
  }

  private async deliveryIds(where: Record<string, unknown>): Promise<number[]> {
    const rows = await this.dataSource.manager.find(WebhookDelivery, {
      select: { id: true },
      where: { ...where, id: Not(IsNull()) },
      take: MAINTENANCE_BATCH_SIZE,
    });
    return rows.map((row) => row.id);
  }

  /**
   * Removes the deliveries among `ids` that still match `where` (a `redeliver()` may have made one
   * PENDING since they were read), with their attempts. Attempts go first, as a batch of results
   * writes them, of the deliveries a read without locks still finds matching; the deliveries' delete
   * is conditional in itself, so one redelivered in between stays (with its attempts gone). The
   * conditions use no indexed column: through the due index the delete would lock that index before
   * the primary key, the other order than the dispatcher's claims, which deadlocks on MySQL.
   */
  private deleteDeliveries(ids: number[], where: Record<string, unknown>): Promise<number> {
    const { dataSource } = this;
    const stillMatching = { ...where, id: In(ids) };
    const read = dataSource.createQueryBuilder(WebhookDelivery, 'd').select('d.id', 'id').where(stillMatching).getQueryAndParameters();
    return runTransactionSteps(dataSource, function* () {
      const matching = (yield read).rows.map((row) => Number(row.id));
      if (matching.length === 0) return 0;
      yield deleteStatement(dataSource, WebhookDeliveryAttempt, { deliveryId: In(matching) });
      return (yield deleteStatement(dataSource, WebhookDelivery, { ...where, id: In(matching) })).affected;
    });
  }

  /** No listener (`liveOnly`: no live one, bound as `:...live`) points at the URL or identity `o`. */
  private noListenerUsing(target: ManagedTarget, { liveOnly }: { liveOnly: boolean }): string {
    const l = (property: string) => this.sql.column(WebhookListener, property, 'l');
    const reference = l(target === WebhookUrl ? 'url' : 'identity');
    return (
      `NOT EXISTS (SELECT 1 FROM ${this.sql.table(WebhookListener)} l WHERE ${reference} = o.id` +
      (liveOnly ? ` AND ${l('state')} IN (:...live))` : ')')
    );
  }
}
