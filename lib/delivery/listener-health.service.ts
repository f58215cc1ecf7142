import { Inject, Injectable, Logger } from '@nestjs/common';
import { MoreThan, type DataSource } from 'typeorm';
import { ListenerChangeNotifier } from '../management/listener-change.notifier.js';
import { EventEmitter2, WEBHOOK_EVENT_EMITTER, emitEvent } from '../events/event-emitter.js';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookListener } from '../model/webhook-listener.entity.js';
import { WEBHOOK_DATA_SOURCE, WEBHOOK_RESOLVED_OPTIONS } from '../module/webhook.constants.js';
import type { ResolvedWebhookOptions } from '../module/webhook-options.interface.js';
import { SqlText } from '../persistence/sql-text.js';
import { runTransactionSteps, updateStatement } from '../persistence/transaction.js';
import { WEBHOOK_LISTENER_DEACTIVATED, type WebhookListenerDeactivatedPayload } from './delivery.constants.js';

/**
 * Deactivates listeners whose receivers keep failing, as wallee does: when none of their deliveries
 * succeeded for `deactivateAfter.noSuccessForMs` and at least `deactivateAfter.abandonedDeliveries`
 * were abandoned meanwhile (see `afterAbandoned`); and at once on `410 Gone`.
 */
@Injectable()
export class ListenerHealthService {
  private readonly logger = new Logger('WebhookListenerHealth');
  private readonly sql = new SqlText(this.dataSource);

  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource,
    @Inject(WEBHOOK_RESOLVED_OPTIONS) private readonly options: ResolvedWebhookOptions,
    @Inject(WEBHOOK_EVENT_EMITTER) private readonly emitter: EventEmitter2,
    private readonly changes: ListenerChangeNotifier,
  ) {}

  /**
   * Deactivates the listener when, over the last `noSuccessForMs`, it stayed unchanged (its
   * `updatedOn`: its creation, a reactivation or any other change, is older), none of its deliveries
   * succeeded and at least `abandonedDeliveries` were abandoned. Only that window is read, so a
   * delivery log kept for less time still shows the deliveries that count. With `noSuccessForMs` 0,
   * the deliveries abandoned since its last change and its last success count.
   */
  async afterAbandoned(listenerId: number): Promise<void> {
    const { abandonedDeliveries, noSuccessForMs } = this.options.delivery.deactivateAfter;
    const windowStart = Date.now() - noSuccessForMs;
    const listener = await this.activeListener(listenerId);
    if (!listener) return;
    const changedAt = Date.now() - listener.changedMsAgo;
    if (changedAt > windowStart) return;
    let failingSince = noSuccessForMs > 0 ? windowStart : changedAt;
    // Within a window any success keeps the listener; without one, the latest starts the count anew.
    const success = await this.successAfter(listenerId, failingSince, { latest: noSuccessForMs === 0 });
    if (success && noSuccessForMs > 0) return;
    if (success) failingSince = success.completedAt!;
    const abandoned = await this.dataSource.getRepository(WebhookDelivery).find({
      select: { id: true },
      where: { listenerId, state: WebhookDeliveryState.ABANDONED, completedAt: MoreThan(failingSince) },
      take: abandonedDeliveries,
    });
    if (abandoned.length < abandonedDeliveries) return;
    await this.deactivate(
      listenerId,
      `${abandonedDeliveries} or more deliveries were abandoned and none succeeded since ${new Date(failingSince).toISOString()}`,
      // Not if it was changed (reactivated, say) since it was read.
      listener.version,
    );
  }

  /** A delivery of the listener that succeeded after `since`: any (read without sorting), or the `latest`. */
  private successAfter(listenerId: number, since: number, { latest }: { latest: boolean }): Promise<WebhookDelivery | null> {
    return this.dataSource.getRepository(WebhookDelivery).findOne({
      select: { id: true, completedAt: true },
      where: { listenerId, state: WebhookDeliveryState.SUCCEEDED, completedAt: MoreThan(since) },
      ...(latest && { order: { completedAt: 'DESC', id: 'DESC' } }),
    });
  }

  /** The listener's version and how long ago it last changed (its `updatedOn`, by the database's clock), if it is ACTIVE. */
  private async activeListener(listenerId: number): Promise<{ version: number; changedMsAgo: number } | null> {
    const column = (property: string) => this.sql.column(WebhookListener, property, 'l');
    const row: { state: string; version: number | string; changedMsAgo: number | string } | undefined = await this.dataSource
      .createQueryBuilder(WebhookListener, 'l')
      .select(column('state'), 'state')
      .addSelect(column('version'), 'version')
      .addSelect(this.sql.msSinceDatabaseWrote(column('updatedOn')), 'changedMsAgo')
      .where(`${column('id')} = :listenerId`, { listenerId })
      .getRawOne();
    if (row?.state !== CreationEntityState.ACTIVE) return null;
    // Whole milliseconds, since the times it is compared with are bigint columns; rounded down, it errs toward a later change.
    return { version: Number(row.version), changedMsAgo: Math.floor(Number(row.changedMsAgo)) };
  }

  /** Sets the listener INACTIVE if it is ACTIVE (and still at `version`, when given); `false` if it was not. */
  async deactivate(listenerId: number, reason: string, version?: number): Promise<boolean> {
    const deactivate = updateStatement(
      this.dataSource,
      WebhookListener,
      { state: CreationEntityState.INACTIVE },
      { id: listenerId, state: CreationEntityState.ACTIVE, ...(version !== undefined && { version }) },
    );
    const read = this.dataSource
      .createQueryBuilder(WebhookListener, 'l')
      .select('l.linkedSpaceId', 'linkedSpaceId')
      .addSelect('l.entity', 'entity')
      .where({ id: listenerId })
      .getQueryAndParameters();
    const listener = await runTransactionSteps(this.dataSource, function* () {
      const { affected } = yield deactivate;
      if (affected === 0) return null;
      const { rows } = yield read;
      return { id: listenerId, linkedSpaceId: Number(rows[0].linkedSpaceId), entity: String(rows[0].entity) };
    });
    if (!listener) return false;
    this.logger.warn(`Deactivated WebhookListener ${listenerId} of space ${listener.linkedSpaceId}: ${reason}`);
    const deactivated: WebhookListenerDeactivatedPayload = { listenerId, spaceId: listener.linkedSpaceId, reason };
    emitEvent(this.emitter, this.logger, WEBHOOK_LISTENER_DEACTIVATED, deactivated);
    this.changes.committed(listener, CreationEntityState.ACTIVE, CreationEntityState.INACTIVE);
    return true;
  }
}
