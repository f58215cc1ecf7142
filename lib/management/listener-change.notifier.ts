import { Injectable } from '@nestjs/common';
import { ListenerMatchCache } from '../capture/listener-match.cache.js';
import {
  URL_ADDRESS_COMMITTED,
  WEBHOOK_LISTENER_STATE_CHANGED,
  WEBHOOK_URL_STATE_CHANGED,
  type UrlAddressCommittedPayload,
  type WebhookListenerStateChangedPayload,
  type WebhookUrlStateChangedPayload,
} from '../delivery/delivery.constants.js';
import { ModuleSignals } from '../events/module-signals.js';
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
  constructor(
    private readonly matchCache: ListenerMatchCache,
    private readonly signals: ModuleSignals,
    private readonly registry: WebhookEntityRegistry,
  ) {}

  /** `from` is undefined for a listener just created. */
  committed(listener: ChangedListener, from: string | undefined, to: string): void {
    this.matchCache.invalidate(listener.linkedSpaceId, listener.entity);
    if (from === undefined || from === to) return;
    const changed: WebhookListenerStateChangedPayload = { listenerId: listener.id, spaceId: listener.linkedSpaceId, from, to };
    this.signals.announce(WEBHOOK_LISTENER_STATE_CHANGED, changed);
  }

  /**
   * A URL's state changed: whether its listeners are matched changed with it, for every entity of
   * its space; announced as `webhook.url.state-changed`, on which the worker drops what it holds of a
   * URL that left ACTIVE.
   */
  urlStateCommitted(urlId: number, spaceId: number, from: string, to: string): void {
    for (const entity of this.registry.list()) this.matchCache.invalidate(spaceId, entity.name);
    const changed: WebhookUrlStateChangedPayload = { urlId, spaceId, from, to };
    this.signals.announce(WEBHOOK_URL_STATE_CHANGED, changed);
  }

  /** A change of a URL committed: the worker sends what it holds of the URL to its address as it is now. */
  urlAddressCommitted(urlId: number, address: string): void {
    const committed: UrlAddressCommittedPayload = { urlId, address };
    this.signals.signal(URL_ADDRESS_COMMITTED, committed);
  }
}
