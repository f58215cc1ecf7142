import { Inject, Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookEvent } from '../model/webhook-event.entity.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { insertReturningId } from '../persistence/inserted-id.js';
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
  ) {}

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

    const now = new Date();
    const eventId = await insertReturningId(
      manager.createQueryBuilder().insert().into(WebhookEvent).values({
        linkedSpaceId: change.spaceId,
        entityName: change.entity.name,
        listenerEntityId: change.entity.id,
        entityId: change.entityId,
        state: change.state,
        createdOn: now,
      }),
    );
    await manager
      .createQueryBuilder()
      .insert()
      .into(WebhookDelivery)
      .values(
        matched.map((listener) => ({
          eventId,
          listenerId: listener.id,
          urlId: listener.urlId,
          linkedSpaceId: change.spaceId,
          state: WebhookDeliveryState.PENDING,
          attempts: 0,
          nextAttemptAt: now.getTime(),
          leaseOwner: null,
          leaseUntil: null,
          completedAt: null,
          createdOn: now,
        })),
      )
      .updateEntity(false)
      .callListeners(false)
      .execute();
    this.notifier.recorded(manager.queryRunner, matched.length);
    return matched.length;
  }
}

function matches(listener: MatchableListener, change: EntityChange): boolean {
  const stateWatched = listener.entityStates === null || listener.entityStates.has(change.state);
  return stateWatched && (change.stateChanged || listener.notifyEveryChange);
}
