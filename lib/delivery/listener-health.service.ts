import { Inject, Injectable, Logger } from '@nestjs/common';
import { In, MoreThan, type DataSource } from 'typeorm';
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
 * Deactivates listeners whose receivers keep failing, as wallee does: when the last
 * `deactivateAfter.abandonedDeliveries` finished deliveries were all abandoned and none succeeded
 * within `deactivateAfter.noSuccessForMs`; and at once on `410 Gone`.
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

  async afterAbandoned(listenerId: number): Promise<void> {
    const { abandonedDeliveries, noSuccessForMs } = this.options.delivery.deactivateAfter;
    const repository = this.dataSource.getRepository(WebhookDelivery);
    const recentSuccess = await repository.findOne({
      select: { id: true },
      where: { listenerId, state: WebhookDeliveryState.SUCCEEDED, completedAt: MoreThan(Date.now() - noSuccessForMs) },
    });
    if (recentSuccess) return;
    const lastFinished = await repository.find({
      select: { id: true, state: true },
      where: { listenerId, state: In([WebhookDeliveryState.SUCCEEDED, WebhookDeliveryState.ABANDONED]) },
      order: { completedAt: 'DESC', id: 'DESC' },
      take: abandonedDeliveries,
    });
    if (lastFinished.length === abandonedDeliveries && lastFinished.every((d) => d.state === WebhookDeliveryState.ABANDONED)) {
      await this.deactivate(
        listenerId,
        `the last ${abandonedDeliveries} deliveries were abandoned and none succeeded for ${Math.round(noSuccessForMs / 3_600_000)} h`,
      );
    }
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
