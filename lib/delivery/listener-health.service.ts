import { Inject, Injectable, Logger } from '@nestjs/common';
import { And, LessThanOrEqual, MoreThan, type DataSource } from 'typeorm';
import { ListenerChangeNotifier } from '../management/listener-change.notifier.js';
import { EventEmitter2, WEBHOOK_EVENT_EMITTER, emitEvent } from '../events/event-emitter.js';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookListener } from '../model/webhook-listener.entity.js';
import { WEBHOOK_DATA_SOURCE, WEBHOOK_RESOLVED_OPTIONS } from '../module/webhook.constants.js';
import type { ResolvedWebhookOptions } from '../module/webhook-options.interface.js';
import { runTransactionSteps, updateStatement } from '../persistence/transaction.js';
import { WEBHOOK_LISTENER_DEACTIVATED, type WebhookListenerDeactivatedPayload } from './delivery.constants.js';

/**
 * Deactivates listeners whose receivers keep failing, as wallee does: when they have been failing for
 * `deactivateAfter.noSuccessForMs` with at least `deactivateAfter.abandonedDeliveries` abandoned
 * deliveries (see `afterAbandoned`); and at once on `410 Gone`.
 */
@Injectable()
export class ListenerHealthService {
  private readonly logger = new Logger('WebhookListenerHealth');

  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource,
    @Inject(WEBHOOK_RESOLVED_OPTIONS) private readonly options: ResolvedWebhookOptions,
    @Inject(WEBHOOK_EVENT_EMITTER) private readonly emitter: EventEmitter2,
    private readonly changes: ListenerChangeNotifier,
  ) {}

  /**
   * Deactivates the listener when it has been failing for `noSuccessForMs`: at least
   * `abandonedDeliveries` deliveries were abandoned after both its `updatedOn` (set by its creation,
   * a reactivation or any other change) and its last successful delivery, the first of them
   * `noSuccessForMs` ago or earlier.
   */
  async afterAbandoned(listenerId: number): Promise<void> {
    const { abandonedDeliveries, noSuccessForMs } = this.options.delivery.deactivateAfter;
    const failingAfter = await this.lastUpdateOrSuccess(listenerId);
    if (failingAfter === null) return;
    const deliveries = this.dataSource.getRepository(WebhookDelivery);
    const abandonedAfterwards = { listenerId, state: WebhookDeliveryState.ABANDONED };
    const firstAbandoned = await deliveries.findOne({
      select: { id: true, completedAt: true },
      where: { ...abandonedAfterwards, completedAt: And(MoreThan(failingAfter), LessThanOrEqual(Date.now() - noSuccessForMs)) },
      order: { completedAt: 'ASC', id: 'ASC' },
    });
    if (!firstAbandoned) return;
    const counted = await deliveries.find({
      select: { id: true },
      where: { ...abandonedAfterwards, completedAt: MoreThan(failingAfter) },
      take: abandonedDeliveries,
    });
    if (counted.length < abandonedDeliveries) return;
    const since = new Date(firstAbandoned.completedAt!).toISOString();
    await this.deactivate(listenerId, `at least ${abandonedDeliveries} deliveries were abandoned and none succeeded since ${since}`);
  }

  /** Epoch ms of the listener's `updatedOn` or of its last successful delivery, whichever is later; `null` unless it is ACTIVE. */
  private async lastUpdateOrSuccess(listenerId: number): Promise<number | null> {
    const listener = await this.dataSource.getRepository(WebhookListener).findOne({
      select: { id: true, state: true, updatedOn: true },
      where: { id: listenerId },
    });
    if (listener?.state !== CreationEntityState.ACTIVE) return null;
    const updatedAt = listener.updatedOn.getTime();
    const lastSuccess = await this.dataSource.getRepository(WebhookDelivery).findOne({
      select: { id: true, completedAt: true },
      where: { listenerId, state: WebhookDeliveryState.SUCCEEDED, completedAt: MoreThan(updatedAt) },
      order: { completedAt: 'DESC', id: 'DESC' },
    });
    return lastSuccess?.completedAt ?? updatedAt;
  }

  async deactivate(listenerId: number, reason: string): Promise<void> {
    const deactivate = updateStatement(
      this.dataSource,
      WebhookListener,
      { state: CreationEntityState.INACTIVE },
      { id: listenerId, state: CreationEntityState.ACTIVE },
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
    if (!listener) return;
    this.logger.warn(`Deactivated WebhookListener ${listenerId} of space ${listener.linkedSpaceId}: ${reason}`);
    const deactivated: WebhookListenerDeactivatedPayload = { listenerId, spaceId: listener.linkedSpaceId, reason };
    emitEvent(this.emitter, this.logger, WEBHOOK_LISTENER_DEACTIVATED, deactivated);
    this.changes.committed(listener, CreationEntityState.ACTIVE, CreationEntityState.INACTIVE);
  }
}
