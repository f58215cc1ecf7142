import { Inject, Injectable, Logger } from '@nestjs/common';
import { Brackets, IsNull, LessThan, type DataSource, type EntityManager } from 'typeorm';
import { WebhookNotFoundError, WebhookStateError } from '../errors/webhook.errors.js';
import { ModuleSignals } from '../events/module-signals.js';
import { WebhookAttemptOutcome, WebhookDeliveryAttempt } from '../model/webhook-delivery-attempt.entity.js';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookEvent } from '../model/webhook-event.entity.js';
import { WebhookListener } from '../model/webhook-listener.entity.js';
import { WebhookUrl } from '../model/webhook-url.entity.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { WEBHOOK_EVENTS_COMMITTED } from '../capture/capture.constants.js';
import { inTransaction } from '../persistence/transaction.js';
import type { QueryField } from '../query/entity-query.constants.js';
import { EntityQueryCompiler, searchByQuery } from '../query/entity-query.compiler.js';
import type { EntityQuery, EntityQueryFilter } from '../query/entity-query.types.js';
import { requireId } from '../validation/input.validation.js';

const field = (alias: string, property: string, kind: QueryField['kind'], values?: readonly string[]): QueryField => ({
  alias,
  property,
  kind,
  values,
});

const DELIVERY_FIELDS: Record<string, QueryField> = {
  id: field('d', 'id', 'integer'),
  eventId: field('d', 'eventId', 'integer'),
  listenerId: field('d', 'listenerId', 'integer'),
  urlId: field('d', 'urlId', 'integer'),
  state: field('d', 'state', 'state', Object.values(WebhookDeliveryState)),
  attempts: field('d', 'attempts', 'integer'),
  nextAttemptAt: field('d', 'nextAttemptAt', 'integer'),
  completedAt: field('d', 'completedAt', 'integer'),
  createdOn: field('d', 'createdOn', 'date'),
};

const ATTEMPT_FIELDS: Record<string, QueryField> = {
  id: field('a', 'id', 'integer'),
  deliveryId: field('a', 'deliveryId', 'integer'),
  listenerId: field('a', 'listenerId', 'integer'),
  attemptNumber: field('a', 'attemptNumber', 'integer'),
  startedAt: field('a', 'startedAt', 'integer'),
  durationMs: field('a', 'durationMs', 'integer'),
  outcome: field('a', 'outcome', 'state', Object.values(WebhookAttemptOutcome)),
  statusCode: field('a', 'statusCode', 'integer'),
};

/** The delivery log: deliveries and their attempts, searchable per space, and redelivery on demand. */
@Injectable()
export class WebhookDeliveryService {
  private readonly logger = new Logger('WebhookDeliveryService');

  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly signals: ModuleSignals,
  ) {}

  /** Deliveries of a space; filter on `listenerId`, `state`, `createdOn`, `completedAt` (epoch ms) … */
  searchDeliveries(spaceId: number, query: EntityQuery = {}): Promise<WebhookDelivery[]> {
    return this.search(spaceId, query, WebhookDelivery, 'd', DELIVERY_FIELDS);
  }

  async countDeliveries(spaceId: number, filter?: EntityQueryFilter): Promise<number> {
    requireId(spaceId, 'spaceId');
    const qb = this.dataSource.manager.createQueryBuilder(WebhookDelivery, 'd').where('d.linkedSpaceId = :spaceId', { spaceId });
    new EntityQueryCompiler(this.dataSource, DELIVERY_FIELDS, qb).applyFilter(filter, 'filter');
    return qb.getCount();
  }

  /** Attempts of a space, e.g. `{ filter: { type: 'LEAF', fieldName: 'deliveryId', operator: 'EQUALS', value: id } }`. */
  searchAttempts(spaceId: number, query: EntityQuery = {}): Promise<WebhookDeliveryAttempt[]> {
    return this.search(spaceId, query, WebhookDeliveryAttempt, 'a', ATTEMPT_FIELDS);
  }

  /**
   * Makes a delivery due now, also an abandoned or cancelled one; its attempts so far stay in the log.
   * A delivery that an instance is sending (its lease holds) is refused: taken from under the lease,
   * it would be sent twice at once and its attempt logged twice. So is one whose listener or URL is
   * not ACTIVE, or whose event is gone, which a worker would cancel without sending it.
   */
  async redeliver(spaceId: number, deliveryId: number): Promise<WebhookDelivery> {
    requireId(spaceId, 'spaceId');
    requireId(deliveryId, 'deliveryId');
    const delivery = await inTransaction(this.dataSource, async (manager) => {
      const found = await manager.findOne(WebhookDelivery, { where: { id: deliveryId, linkedSpaceId: spaceId } });
      if (!found) throw new WebhookNotFoundError('WebhookDelivery', deliveryId, spaceId);
      await refuseUnsendable(manager, found);
      const now = Date.now();
      const { affected } = await manager
        .createQueryBuilder()
        .update(WebhookDelivery)
        .set({ state: WebhookDeliveryState.PENDING, nextAttemptAt: now, completedAt: null, leaseOwner: null, leaseUntil: null })
        .where({ id: deliveryId })
        .andWhere(new Brackets((notLeased) => notLeased.where({ leaseUntil: IsNull() }).orWhere({ leaseUntil: LessThan(now) })))
        .execute();
      if (!affected) {
        throw new WebhookStateError(
          'WebhookDelivery',
          deliveryId,
          WebhookDeliveryState.PENDING,
          WebhookDeliveryState.PENDING,
          `WebhookDelivery ${deliveryId} is being sent by an instance; redeliver it once that attempt has finished`,
        );
      }
      return manager.findOneOrFail(WebhookDelivery, { where: { id: deliveryId } });
    });
    this.logger.log(`Redelivering WebhookDelivery ${deliveryId} of space ${spaceId}`);
    this.signals.announce(WEBHOOK_EVENTS_COMMITTED, { events: 0, deliveries: 1 });
    return delivery;
  }

  private async search<T extends WebhookDelivery | WebhookDeliveryAttempt>(
    spaceId: number,
    query: EntityQuery,
    target: new () => T,
    alias: string,
    fields: Record<string, QueryField>,
  ): Promise<T[]> {
    requireId(spaceId, 'spaceId');
    const qb = this.dataSource.manager.createQueryBuilder(target, alias).where(`${alias}.linkedSpaceId = :spaceId`, { spaceId });
    return searchByQuery(this.dataSource, fields, qb, query);
  }
}

/** Throws `WebhookStateError` when a worker would cancel the delivery unsent: its listener or URL not ACTIVE, or its event gone. */
async function refuseUnsendable(manager: EntityManager, delivery: WebhookDelivery): Promise<void> {
  const refuse = (detail: string) =>
    new WebhookStateError(
      'WebhookDelivery',
      delivery.id,
      delivery.state,
      WebhookDeliveryState.PENDING,
      `WebhookDelivery ${delivery.id} ${detail}`,
    );
  for (const [target, entityName, id] of [
    [WebhookListener, 'WebhookListener', delivery.listenerId],
    [WebhookUrl, 'WebhookUrl', delivery.urlId],
  ] as const) {
    const owner = await manager.findOne(target, {
      select: { id: true, state: true },
      where: { id, linkedSpaceId: delivery.linkedSpaceId },
    });
    if (owner?.state !== CreationEntityState.ACTIVE) {
      throw refuse(
        owner
          ? `belongs to ${entityName} ${id}, which is ${owner.state}: make it ACTIVE before redelivering`
          : `belongs to ${entityName} ${id}, which was purged: it cannot be sent again`,
      );
    }
  }
  if (!(await manager.exists(WebhookEvent, { where: { id: delivery.eventId } }))) {
    throw refuse(`is of event ${delivery.eventId}, which was removed: it cannot be sent again`);
  }
}
