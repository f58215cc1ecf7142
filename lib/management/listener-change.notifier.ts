import { Inject, Injectable, Logger } from '@nestjs/common';
import { ListenerMatchCache } from '../capture/listener-match.cache.js';
import {
  WEBHOOK_LISTENER_STATE_CHANGED,
  WEBHOOK_URL_STATE_CHANGED,
  type WebhookListenerStateChangedPayload,
  type WebhookUrlStateChangedPayload,
} from '../delivery/delivery.constants.js';
import { EventEmitter2, WEBHOOK_EVENT_EMITTER, emitEvent } from '../events/event-emitter.js';
import { WebhookEntityRegistry } from '../registry/webhook-entity.registry.js';

/** The parts of a listener a committed change is announced with. */
export interface ChangedListener {
  id: number;
  linkedSpaceId: number;
  entity: string;
}

/**
 * What follows every committed change of a listener, whoever made it (the services, the delivery
 * worker, the scheduled jobs): this instance matches changes against the new listener at once, and
 * a change of state is announced as `webhook.listener.state-changed`.
 */
@Injectable()
export class ListenerChangeNotifier {
  private readonly logger = new Logger('WebhookListenerService');

  constructor(
    private readonly matchCache: ListenerMatchCache,
    @Inject(WEBHOOK_EVENT_EMITTER) private readonly emitter: EventEmitter2,
    private readonly registry: WebhookEntityRegistry,
  ) {}

  /** `from` is undefined for a listener just created. */
  committed(listener: ChangedListener, from: string | undefined, to: string): void {
    this.matchCache.invalidate(listener.linkedSpaceId, listener.entity);
    if (from === undefined || from === to) return;
    const changed: WebhookListenerStateChangedPayload = { listenerId: listener.id, spaceId: listener.linkedSpaceId, from, to };
    emitEvent(this.emitter, this.logger, WEBHOOK_LISTENER_STATE_CHANGED, changed);
  }

  /**
   * A URL's state changed: whether its listeners are matched changed with it, for every entity of
   * its space; announced as `webhook.url.state-changed`, on which the worker drops what it holds of a
   * URL that left ACTIVE.
   */
  urlStateCommitted(urlId: number, spaceId: number, from: string, to: string): void {
    for (const entity of this.registry.list()) this.matchCache.invalidate(spaceId, entity.name);
    const changed: WebhookUrlStateChangedPayload = { urlId, spaceId, from, to };
    emitEvent(this.emitter, this.logger, WEBHOOK_URL_STATE_CHANGED, changed);
  }
}
