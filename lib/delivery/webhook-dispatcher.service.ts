import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { WEBHOOK_EVENTS_COMMITTED } from '../capture/capture.constants.js';
import { errorMessage } from '../errors/error-message.js';
import { WebhookConfigurationError } from '../errors/webhook.errors.js';
import { addToGroup } from './groups.js';
import { EventEmitter2, WEBHOOK_EVENT_EMITTER, emitEvent } from '../events/event-emitter.js';
import { ModuleSignals } from '../events/module-signals.js';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WEBHOOK_RESOLVED_OPTIONS, WEBHOOK_TIMER_PREFIX } from '../module/webhook.constants.js';
import type { ResolvedWebhookOptions } from '../module/webhook-options.interface.js';
import { WebhookEntityRegistry } from '../registry/webhook-entity.registry.js';
import {
  removeInterval,
  removeTimeout,
  replaceInterval,
  replaceTimeout,
  SchedulerRegistry,
  WEBHOOK_SCHEDULER_REGISTRY,
} from '../scheduling/scheduler.js';
import { SsrfGuard } from '../security/ssrf-guard.js';
import { WebhookSigner } from '../signing/webhook-signer.service.js';
import {
  SQLITE_ROLLBACK_JOURNAL_MODES,
  URL_ADDRESS_COMMITTED,
  WEBHOOK_DELIVERY_ABANDONED,
  WEBHOOK_DELIVERY_FAILED,
  WEBHOOK_DELIVERY_SUCCEEDED,
  WEBHOOK_LISTENER_STATE_CHANGED,
  WEBHOOK_URL_STATE_CHANGED,
  type UrlAddressCommittedPayload,
  type WebhookDeliveryEventPayload,
  type WebhookListenerStateChangedPayload,
  type WebhookUrlStateChangedPayload,
} from './delivery.constants.js';
import { DeliveryRequests } from './delivery-requests.js';
import { DeliveryStore, lessLogged, type ClaimedDelivery, type DeliveryCompletion, type FinishedAttempt } from './delivery.store.js';
import { HttpSender, type AttemptResult } from './http-sender.js';
import { ListenerHealthService } from './listener-health.service.js';
import { decideAfterAttempt } from './retry-policy.js';
import { SendingWindows } from './sending-window.js';

const USER_AGENT = 'nestjs-webhook-listener';
/** Pause before claiming again after the database failed us. */
const ERROR_BACKOFF_MS = 1_000;
/** A delivery whose identity's keys do not open on this instance is due again after this long. */
const UNBUILT_REQUEST_RETRY_MS = 30_000;
/** After a claim that looked past the stocked URLs for others and found none, the least wait before the next such look. */
const OTHER_URLS_RECHECK_MS = 100;
/**
 * The wait is also at least this many times what that claim took: beside one URL's backlog, a look
 * for others reads past all of it (400 ms with 770 000 due rows on PostgreSQL without a vacuum).
 */
const OTHER_URLS_RECHECK_COST_FACTOR = 10;
/** Results written in one transaction at most. */
const RESULT_BATCH_SIZE = 500;
/**
 * How long a small batch of results waits for more while requests are in flight. Each batch is a
 * transaction: on SQLite its commit writes every page the batch changed, on the event loop, and
 * batches of 20 ms took a third less statement time per delivery in P1 than batches of 5 ms.
 */
const RESULT_COALESCE_MS = 20;
/** Failures of a single result, each after other results were written, that make it taken for one the database refuses. */
const REFUSED_RESULT_STRIKES = 3;
/** Lost leases are named in one warning at most this often while results are being written. */
const LOST_LEASES_WARNING_INTERVAL_MS = 1_000;
/** How long after a failed write of several results their batches stay small. */
const RESULT_BATCH_REGROW_MS = 10_000;
/** A ready delivery is started only if its lease outlasts the attempt's deadline by this much. */
const LEASE_MARGIN_MS = 1_000;

/**
 * Turns due deliveries into HTTP requests: claims them in batches under a lease, sends them with
 * bounded global and per-URL concurrency, and writes the outcomes back in batches. Woken by
 * commits that recorded events, by its own retry timer, and by a polling backstop.
 */
@Injectable()
export class WebhookDispatcher implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('WebhookDispatcher');
  readonly owner = `${hostname().slice(0, 40)}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly sender: HttpSender;
  private readonly pollTimer: string;
  private readonly retryTimer: string;
  private readonly inFlight = new Map<number, ClaimedDelivery>();
  private readonly inFlightPerUrl = new Map<number, number>();
  /** Claimed deliveries waiting for room to be sent: claims run ahead of sending so that requests never wait for the database. */
  private ready: ClaimedDelivery[] = [];
  /**
   * Ready deliveries put aside, per URL in claim order, because their URL had its full share in
   * flight: one of them starts when a request to that URL ends. Left in `ready`, a stalled URL's
   * batch would be passed over again by every start.
   */
  private readonly parked = new Map<number, ClaimedDelivery[]>();
  /** Requests each URL may have in flight now: its share grows as it answers. */
  private readonly windows: SendingWindows;
  private readonly requests: DeliveryRequests;
  /** Deliveries held, in flight or ready, by id. */
  private readonly heldById = new Map<number, ClaimedDelivery>();
  /** Deliveries held per URL, in flight or ready. */
  private readonly heldPerUrl = new Map<number, number>();
  private readonly released = new Set<number>();
  /** Listener health checks running after attempts; shutdown waits for them. */
  private readonly listenerChecks = new Set<Promise<unknown>>();
  private readonly finished: FinishedAttempt[] = [];
  private running = false;
  /** The claim loop while it runs; shutdown waits for it before giving back what it claimed. */
  private pumping: Promise<void> | null = null;
  private wakeRequested = false;
  /** Deliveries of URLs other than the stocked ones may be due (set by commits, the poll and timers). */
  private othersMayBeDue = true;
  private othersRecheckAt = 0;
  /** The last claim took all it asked for: more deliveries are probably due. */
  private moreDue = false;
  /** URLs the last claim left out or cut short for want of room: they probably have more due. */
  private waitingUrls = new Set<number>();
  private flushing: Promise<void> | null = null;
  /** Results written in one statement now: fewer after a failed write, back to RESULT_BATCH_SIZE as writes succeed. */
  private resultBatchLimit = RESULT_BATCH_SIZE;
  /** Until when a failed write keeps resultBatchLimit from growing again. */
  private resultBatchRegrowAt = 0;
  /** Successful writes of results so far. */
  private resultWrites = 0;
  /** Results that failed to be written on their own: how often while others could be, and the count of writes at their last failure. */
  private readonly refusedResults = new Map<FinishedAttempt, { strikes: number; writesAtLastFailure: number }>();
  private nextRetryAt = Number.POSITIVE_INFINITY;
  /** Deliveries whose results came after their leases had run out, not yet named in a warning. */
  private lostLeases: number[] = [];
  private lostLeasesWarnedAt = 0;
  private idleWaiters: (() => void)[] = [];
  /** After this time (set at shutdown) results that cannot be written are dropped: their leases expire and they are sent again. */
  private giveUpWritingAt = Number.POSITIVE_INFINITY;
  private readonly onCommitted = () => this.wakeForAnyUrl();
  /** Listeners this instance saw leave ACTIVE, and when: a claim that read them just before still holds them as active. */
  private readonly deactivated = new Map<number, number>();
  /** The same for URLs. */
  private readonly deactivatedUrls = new Map<number, number>();
  private readonly onListenerStateChanged = ({ listenerId, to }: WebhookListenerStateChangedPayload) =>
    this.afterListenerStateChange(listenerId, to);
  private readonly onUrlStateChanged = ({ urlId, to }: WebhookUrlStateChangedPayload) =>
    this.afterStateChange(this.deactivatedUrls, urlId, to, (delivery) => delivery.urlId === urlId);
  /**
   * Listeners whose receiver answered 410 Gone, with the deliveries held of them meanwhile: none is
   * started until each such result is written and its listener's deactivation has run (whose signal
   * cancels them), or the result is not written (a lease lost), which lets them go on.
   */
  private readonly goneListeners = new Map<number, { results: number; waiting: ClaimedDelivery[] }>();
  /** URLs whose address this instance changed, to what and when: a claim that began before read the old one. */
  private readonly readdressedUrls = new Map<number, { address: string; at: number }>();
  private readonly onUrlAddressCommitted = ({ urlId, address }: UrlAddressCommittedPayload) => this.afterAddressChange(urlId, address);

  constructor(
    @Inject(WEBHOOK_RESOLVED_OPTIONS) private readonly options: ResolvedWebhookOptions,
    @Inject(WEBHOOK_EVENT_EMITTER) private readonly emitter: EventEmitter2,
    private readonly signals: ModuleSignals,
    @Inject(WEBHOOK_SCHEDULER_REGISTRY) private readonly scheduler: SchedulerRegistry,
    private readonly store: DeliveryStore,
    signer: WebhookSigner,
    registry: WebhookEntityRegistry,
    private readonly health: ListenerHealthService,
    ssrfGuard: SsrfGuard,
    @Inject(WEBHOOK_TIMER_PREFIX) timerPrefix: string,
  ) {
    this.pollTimer = `${timerPrefix}:delivery-poll`;
    this.retryTimer = `${timerPrefix}:delivery-retry`;
    const { timeoutMs, maxResponseBytes, concurrency } = options.delivery;
    // Several URLs can share an origin: its pool may use every connection the global cap allows,
    // while the per-URL cap is kept by the dispatcher.
    this.sender = new HttpSender({ timeoutMs, maxResponseBytes, connectionsPerOrigin: concurrency, userAgent: USER_AGENT }, ssrfGuard);
    this.windows = new SendingWindows(options.delivery.perUrlConcurrency);
    this.requests = new DeliveryRequests(signer, store, registry);
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.options.worker.enabled) {
      this.logger.log('Delivery worker disabled (worker.enabled: false)');
      return;
    }
    await this.adviseOnSqliteJournal();
    this.running = true;
    this.signals.on(WEBHOOK_EVENTS_COMMITTED, this.onCommitted);
    this.signals.on(WEBHOOK_LISTENER_STATE_CHANGED, this.onListenerStateChanged);
    this.signals.on(WEBHOOK_URL_STATE_CHANGED, this.onUrlStateChanged);
    this.signals.on(URL_ADDRESS_COMMITTED, this.onUrlAddressCommitted);
    replaceInterval(this.scheduler, this.pollTimer, () => this.wakeForAnyUrl(), this.options.delivery.pollIntervalMs);
    this.logger.log(
      `Delivering as ${this.owner} (concurrency ${this.options.delivery.concurrency}, ${this.options.delivery.perUrlConcurrency} per URL)`,
    );
    this.wake();
  }

  /**
   * With a rollback journal every commit of claims and results writes and syncs the journal, and
   * better-sqlite3 does that on the event loop, where the requests in flight wait for it.
   */
  private async adviseOnSqliteJournal(): Promise<void> {
    const mode = await this.store.sqliteJournalMode().catch(() => null);
    if (mode === null || !SQLITE_ROLLBACK_JOURNAL_MODES.has(mode)) return;
    this.logger.warn(
      `SQLite runs with journal mode "${mode}": every commit of claimed deliveries and their results syncs a rollback journal. ` +
        'With write-ahead logging (TypeORM option enableWAL: true) a commit syncs only the log, and deliveries flow markedly faster (README, Performance).',
    );
  }

  /** Stops claiming, waits up to `delivery.timeoutMs` for requests in flight, gives the rest back, writes all results. */
  async onModuleDestroy(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.signals.off(WEBHOOK_EVENTS_COMMITTED, this.onCommitted);
    this.signals.off(WEBHOOK_LISTENER_STATE_CHANGED, this.onListenerStateChanged);
    this.signals.off(WEBHOOK_URL_STATE_CHANGED, this.onUrlStateChanged);
    this.signals.off(URL_ADDRESS_COMMITTED, this.onUrlAddressCommitted);
    removeInterval(this.scheduler, this.pollTimer);
    removeTimeout(this.scheduler, this.retryTimer);
    this.giveUpWritingAt = Date.now() + 2 * this.options.delivery.timeoutMs + 1_000;
    await this.pumping;
    await this.giveBack(this.takeAllReady());
    const drained = await this.waitForIdle(this.options.delivery.timeoutMs + 500);
    if (!drained) {
      const unfinished = [...this.inFlight.values()];
      unfinished.forEach(({ id }) => this.released.add(id));
      this.logger.warn(`Shutdown: giving back ${unfinished.length} deliveries still in flight`);
      await this.sender.destroy();
      await this.releaseLeases(unfinished);
    }
    await this.flushAll();
    await Promise.all(this.listenerChecks);
    await this.sender.close().catch(() => undefined);
  }

  /** A listener health check that shutdown waits for, so that it does not outlive the database connection. */
  private track(check: Promise<unknown>): void {
    const tracked = check
      .catch((error) => this.logger.error(`Listener health check failed: ${errorMessage(error)}`))
      .finally(() => this.listenerChecks.delete(tracked));
    this.listenerChecks.add(tracked);
  }

  /** Asks for a claim round; cheap to call often. */
  wake(): void {
    if (!this.running) return;
    this.wakeRequested = true;
    this.pumping ??= this.pump().finally(() => {
      this.pumping = null;
      if (this.wakeRequested) this.wake();
    });
  }

  /** A wake that may concern any URL: a commit, the poll or a timer. */
  private wakeForAnyUrl(): void {
    this.markOthersMayBeDue();
    this.wake();
  }

  /** Deliveries this instance is sending right now. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  private async pump(): Promise<void> {
    try {
      while (this.wakeRequested && this.running) {
        this.wakeRequested = false;
        await this.claimWhileRoom();
      }
    } catch (error) {
      this.logger.error(`Claiming deliveries failed, trying again in ${ERROR_BACKOFF_MS} ms: ${errorMessage(error)}`);
      this.scheduleWake(Date.now() + ERROR_BACKOFF_MS);
    }
  }

  private async claimWhileRoom(): Promise<void> {
    const { batchSize, leaseMs } = this.options.delivery;
    let room = this.claimRoom();
    while (this.running) {
      if (!this.worthClaiming(room)) {
        // Something may be due: claimIfWorthIt claims once a request ending leaves room enough.
        this.moreDue = true;
        return;
      }
      const stocked = [...this.heldPerUrl].filter(([, held]) => held > this.perUrlRefillMark()).map(([urlId]) => urlId);
      // A claim that leaves out stocked URLs reads past all their due rows: run it only when other
      // URLs may have due deliveries (see othersMayBeDue) or a URL is back to its refill mark.
      if (stocked.length > 0 && !this.othersMayBeDue && !this.refillDue()) {
        // Stocked URLs are claimed for again once they are down to their refill mark.
        stocked.forEach((urlId) => this.waitingUrls.add(urlId));
        return;
      }
      const limit = Math.min(batchSize, room);
      const claimStart = Date.now();
      const { deliveries, limitedUrlIds } = await this.store.claim(this.owner, limit, leaseMs, stocked, (urlId) =>
        Math.max(0, this.perUrlHoldLimit() - (this.heldPerUrl.get(urlId) ?? 0)),
      );
      this.waitingUrls = new Set([...stocked, ...limitedUrlIds]);
      this.moreDue = deliveries.length >= limit;
      // A full claim is the surest sign that more is due: without it, a claim round cut short by
      // the room left the other URLs waiting for the poll once some URL was stocked.
      if (this.moreDue) this.markOthersMayBeDue();
      else if (stocked.length > 0) this.othersFoundNone(Date.now() - claimStart);
      if (deliveries.length === 0) return;
      const added = deliveries.filter((delivery) => this.hold(delivery, claimStart));
      this.cancelUnsent(added.filter((delivery) => !delivery.sendable));
      await this.requests.prepare(added);
      // A claim that ends after shutdown began starts nothing: shutdown gives its deliveries back.
      if (!this.running) return;
      this.startReady();
      if (!this.moreDue) return;
      // On better-sqlite3 every claim resolves without a turn of the event loop: without this, a
      // backlog claimed and cancelled or given back batch after batch would keep timers and answers waiting.
      await new Promise((resolve) => setImmediate(resolve));
      room = this.claimRoom();
    }
  }

  /**
   * Deliveries this instance may still claim: enough to fill every request slot and one batch
   * beyond. Ready deliveries of URLs at their cap do not count: a slow URL must not stop the others.
   * Results waiting to be written beyond a batch of them do: while the database takes no results
   * (connections cut again and again, say), leases would otherwise pile up and run out, and their
   * deliveries be sent again by other claims.
   */
  private claimRoom(): number {
    const { concurrency, batchSize } = this.options.delivery;
    const unwritten = Math.max(0, this.finished.length - RESULT_BATCH_SIZE);
    return concurrency + batchSize - this.inFlight.size - (this.ready.length + this.parkedCount() - this.readyBehindCap()) - unwritten;
  }

  /**
   * Per URL, a round of requests in flight and a batch ready behind it: more would let one URL
   * crowd out the others, less would let requests wait for the database.
   */
  private perUrlHoldLimit(): number {
    const { perUrlConcurrency, batchSize } = this.options.delivery;
    return perUrlConcurrency + batchSize;
  }

  /** A URL is claimed for again once half a batch is left ready, so that every claim brings at least that. */
  private perUrlRefillMark(): number {
    const { perUrlConcurrency, batchSize } = this.options.delivery;
    return perUrlConcurrency + Math.floor(batchSize / 2);
  }

  /** Some URL the last claim cut short is down to its refill mark. */
  private refillDue(): boolean {
    for (const urlId of this.waitingUrls) if ((this.heldPerUrl.get(urlId) ?? 0) <= this.perUrlRefillMark()) return true;
    return false;
  }

  /**
   * Commits, the poll and timers may bring due deliveries of any URL; but while some URLs are
   * stocked, looking for them costs a read past those URLs' backlog, so after one found nothing
   * the next waits OTHER_URLS_RECHECK_MS, or longer if that read took long.
   */
  private markOthersMayBeDue(): void {
    const wait = this.othersRecheckAt - Date.now();
    if (wait <= 0) this.othersMayBeDue = true;
    else this.scheduleWake(this.othersRecheckAt);
  }

  private othersFoundNone(tookMs: number): void {
    this.othersMayBeDue = false;
    this.othersRecheckAt = Date.now() + Math.max(OTHER_URLS_RECHECK_MS, tookMs * OTHER_URLS_RECHECK_COST_FACTOR);
  }

  /**
   * A claim costs its statements and, while some URLs are stocked, a read past their due rows,
   * whatever it brings: claims of less than half a batch would pay that for every few deliveries.
   * Requests do not wait for it: with nothing ready to start, the room is a whole batch at least.
   */
  private worthClaiming(room: number): boolean {
    return room >= this.options.delivery.batchSize / 2;
  }

  /** After a request ends: claim again if the last claim left due deliveries behind that there is now room for. */
  private claimIfWorthIt(urlId: number): void {
    if (this.moreDue && this.worthClaiming(this.claimRoom())) return this.wake();
    // The URL stays waiting until a claim has run: the claim is let through for it (refillDue) even
    // while other URLs are stocked and none of them may have more due.
    if (this.waitingUrls.has(urlId) && (this.heldPerUrl.get(urlId) ?? 0) <= this.perUrlRefillMark()) this.wake();
  }

  /**
   * Keeps a claimed delivery ready; `false` if this instance already holds it. That happens when a
   * lease ran out while the delivery waited or was in flight and a claim of this instance took it
   * again: the copy held goes on under the new lease, so that it is sent and written back once.
   */
  private hold(delivery: ClaimedDelivery, claimStart: number): boolean {
    const held = this.heldById.get(delivery.id);
    if (held) {
      held.leaseUntil = delivery.leaseUntil;
      // Another instance may have made an attempt meanwhile, under the lease it took over.
      held.attempts = delivery.attempts;
      return false;
    }
    // Only a claim that began before the listener left ACTIVE can have read it as active; a later
    // one read its state as it is now, which another instance may have made ACTIVE again.
    const deactivatedAt = Math.max(
      this.deactivated.get(delivery.listenerId) ?? Number.NEGATIVE_INFINITY,
      this.deactivatedUrls.get(delivery.urlId) ?? Number.NEGATIVE_INFINITY,
    );
    if (deactivatedAt >= claimStart) delivery.sendable = false;
    const readdressed = this.readdressedUrls.get(delivery.urlId);
    if (readdressed && readdressed.at >= claimStart) delivery.url = readdressed.address;
    this.heldById.set(delivery.id, delivery);
    const gone = this.goneListeners.get(delivery.listenerId);
    if (gone) gone.waiting.push(delivery);
    else this.ready.push(delivery);
    this.heldPerUrl.set(delivery.urlId, (this.heldPerUrl.get(delivery.urlId) ?? 0) + 1);
    return true;
  }

  private unhold(delivery: ClaimedDelivery): void {
    if (this.heldById.get(delivery.id) !== delivery) return;
    this.heldById.delete(delivery.id);
    const held = (this.heldPerUrl.get(delivery.urlId) ?? 1) - 1;
    if (held > 0) this.heldPerUrl.set(delivery.urlId, held);
    else this.heldPerUrl.delete(delivery.urlId);
  }

  /** Starts ready deliveries while there is room, in claim order, parking those of URLs at their cap. */
  private startReady(): void {
    if (this.ready.length === 0 || !this.hasFreeSlot()) return;
    const expiring: ClaimedDelivery[] = [];
    const latestSafeStart = this.latestSafeStart();
    // One by one with shift(), for which V8 moves the start of a long array rather than its elements.
    // A splice() of the started ones afterwards moved every delivery still ready, about a batch each
    // time a slot freed: 3-5 µs of CPU per delivery in P1 on SQLite.
    while (this.ready.length > 0 && this.hasFreeSlot()) {
      const delivery = this.ready.shift()!;
      if (this.atUrlCap(delivery.urlId)) this.park(delivery);
      else if (delivery.leaseUntil < latestSafeStart) expiring.push(delivery);
      else this.start(delivery);
    }
    if (expiring.length > 0) void this.giveBack(expiring);
  }

  /**
   * After a request to `urlId` ended: its URL's parked deliveries take the free slot first. They
   * were claimed before any delivery still in `ready`, which startReady reaches in claim order.
   */
  private startParked(urlId: number): void {
    const queue = this.parked.get(urlId);
    if (!queue) return;
    const expiring: ClaimedDelivery[] = [];
    const latestSafeStart = this.latestSafeStart();
    while (queue.length > 0 && this.hasFreeSlot() && !this.atUrlCap(urlId)) {
      const delivery = queue.shift()!;
      if (delivery.leaseUntil < latestSafeStart) expiring.push(delivery);
      else this.start(delivery);
    }
    if (queue.length === 0) this.parked.delete(urlId);
    if (expiring.length > 0) void this.giveBack(expiring);
  }

  private park(delivery: ClaimedDelivery): void {
    addToGroup(this.parked, delivery.urlId, delivery);
  }

  private parkedCount(): number {
    let count = 0;
    for (const queue of this.parked.values()) count += queue.length;
    return count;
  }

  private hasFreeSlot(): boolean {
    return this.inFlight.size < this.options.delivery.concurrency;
  }

  private atUrlCap(urlId: number): boolean {
    return (this.inFlightPerUrl.get(urlId) ?? 0) >= this.windows.of(urlId);
  }

  /** A delivery whose lease ends before this could run out of it during the attempt, and another instance send it too: it is given back instead. */
  private latestSafeStart(): number {
    return Date.now() + this.options.delivery.timeoutMs + LEASE_MARGIN_MS;
  }

  /** Every ready delivery, parked, waiting for a gone listener's deactivation, or neither. */
  private allReady(): ClaimedDelivery[] {
    const waiting = [...this.goneListeners.values()].flatMap((gone) => gone.waiting);
    return [...[...this.parked.values()].flat(), ...waiting, ...this.ready];
  }

  private takeAllReady(): ClaimedDelivery[] {
    const all = this.allReady();
    this.ready = [];
    this.parked.clear();
    for (const gone of this.goneListeners.values()) gone.waiting = [];
    return all;
  }

  /** Ready deliveries whose URL has its full share in flight. */
  private readyBehindCap(): number {
    let behind = 0;
    for (const [urlId, inFlight] of this.inFlightPerUrl)
      if (inFlight >= this.windows.of(urlId)) behind += (this.heldPerUrl.get(urlId) ?? 0) - inFlight;
    return behind;
  }

  /** A listener or URL that left ACTIVE: what is held of it and not yet started is cancelled. */
  private afterStateChange(deactivated: Map<number, number>, id: number, to: string, ofIt: (delivery: ClaimedDelivery) => boolean): void {
    if (to === CreationEntityState.ACTIVE) {
      deactivated.delete(id);
      return;
    }
    const now = Date.now();
    this.forgetOlderThanLease(deactivated, (at) => at, now);
    deactivated.set(id, now);
    this.cancelUnsent(this.allReady().filter(ofIt));
  }

  private afterListenerStateChange(listenerId: number, to: string): void {
    this.afterStateChange(this.deactivated, listenerId, to, (delivery) => delivery.listenerId === listenerId);
  }

  /** Forgets what was noted more than a lease ago: no delivery of a claim that began before it is still held. */
  private forgetOlderThanLease<V>(noted: Map<number, V>, notedAt: (value: V) => number, now: number): void {
    for (const [id, value] of noted) if (notedAt(value) < now - this.options.delivery.leaseMs) noted.delete(id);
  }

  /** A URL's address changed: what is held of it and not yet started goes to the new one. */
  private afterAddressChange(urlId: number, address: string): void {
    const now = Date.now();
    this.forgetOlderThanLease(this.readdressedUrls, ({ at }) => at, now);
    this.readdressedUrls.set(urlId, { address, at: now });
    for (const delivery of this.allReady()) if (delivery.urlId === urlId) delivery.url = address;
  }

  /** Ready deliveries that must not be sent (listener no longer active, event or URL gone) end as cancelled, without waiting for a slot. */
  private cancelUnsent(deliveries: ClaimedDelivery[]): void {
    if (deliveries.length === 0) return;
    const cancelled = new Set(deliveries);
    this.removeReady((delivery) => cancelled.has(delivery));
    for (const delivery of deliveries) {
      this.unhold(delivery);
      this.finished.push({ delivery, result: null, completion: { kind: 'cancelled' } });
    }
    void this.flush();
  }

  private removeReady(removed: (delivery: ClaimedDelivery) => boolean): void {
    this.ready = this.ready.filter((delivery) => !removed(delivery));
    for (const gone of this.goneListeners.values()) gone.waiting = gone.waiting.filter((delivery) => !removed(delivery));
    for (const [urlId, queue] of this.parked) {
      const keptParked = queue.filter((delivery) => !removed(delivery));
      if (keptParked.length > 0) this.parked.set(urlId, keptParked);
      else this.parked.delete(urlId);
    }
  }

  private async giveBack(deliveries: ClaimedDelivery[]): Promise<void> {
    if (deliveries.length === 0) return;
    deliveries.forEach((delivery) => this.unhold(delivery));
    await this.releaseLeases(deliveries);
  }

  /** Ends this instance's leases on deliveries it will not send, due again at `dueAt`. A failure is logged: the leases then run out. */
  private releaseLeases(deliveries: ClaimedDelivery[], dueAt = Date.now()): Promise<void> {
    return this.store
      .release(this.owner, deliveries, dueAt)
      .catch((error) => this.logger.error(`Could not give back ${deliveries.length} deliveries: ${errorMessage(error)}`));
  }

  private start(delivery: ClaimedDelivery): void {
    this.inFlight.set(delivery.id, delivery);
    this.inFlightPerUrl.set(delivery.urlId, (this.inFlightPerUrl.get(delivery.urlId) ?? 0) + 1);
    void this.attempt(delivery)
      .then(
        // A delivery started but not sent is given back here; `settle` lets go of it afterwards.
        (outcome) => (outcome ? this.record(outcome) : this.releaseLeases([delivery])),
        (error) => {
          // Nothing was sent: give the delivery back rather than leave it leased, not due at once,
          // or it would be claimed again and again. Keys that do not open stay so until the options change.
          const retryInMs = error instanceof WebhookConfigurationError ? UNBUILT_REQUEST_RETRY_MS : ERROR_BACKOFF_MS;
          this.logger.error(
            `Delivery ${delivery.id} could not be sent; it is tried again in ${retryInMs / 1000} s: ${errorMessage(error)}`,
          );
          return this.releaseLeases([delivery], Date.now() + retryInMs);
        },
      )
      .finally(() => this.settle(delivery));
  }

  /** Sends a delivery; `null` when building its request took so long that its lease would not outlast the attempt. */
  private async attempt(delivery: ClaimedDelivery): Promise<FinishedAttempt | null> {
    const { body, headers } = await this.requests.requestOf(delivery);
    // The same margin as at the start: the result is written after the request's deadline.
    if (delivery.leaseUntil < this.latestSafeStart()) return null;
    const result = await this.sender.send({ url: delivery.url, body, headers });
    this.windows.afterAttempt(delivery.urlId, result.outcome);
    return { delivery, result, completion: this.completionOf(delivery, result) };
  }

  private completionOf(delivery: ClaimedDelivery, result: AttemptResult): DeliveryCompletion {
    const decision = decideAfterAttempt(result, delivery.attempts + 1, this.options.delivery);
    if (decision.kind === 'retry') return { kind: 'retry', nextAttemptAt: Date.now() + decision.delayMs };
    if (decision.kind === 'abandon')
      return { kind: 'abandoned', ...(decision.deactivateListener && { deactivatesListener: decision.reason }) };
    return { kind: 'succeeded' };
  }

  private record(outcome: FinishedAttempt): void {
    if (this.released.delete(outcome.delivery.id)) return;
    if (deactivatesListener(outcome)) this.holdBackListener(outcome.delivery.listenerId);
    this.finished.push(outcome);
    void this.flush();
  }

  /** A 410 Gone came in: what is held of its listener waits (see goneListeners) instead of being sent. */
  private holdBackListener(listenerId: number): void {
    const gone = this.goneListeners.get(listenerId);
    if (gone) {
      gone.results++;
      return;
    }
    const waiting = this.allReady().filter((delivery) => delivery.listenerId === listenerId);
    const moved = new Set(waiting);
    this.removeReady((delivery) => moved.has(delivery));
    this.goneListeners.set(listenerId, { results: 1, waiting });
  }

  /** One 410 Gone of the listener is through (written and acted on, or not written): the last lets what still waits go on. */
  private letListenerGoOn(listenerId: number): void {
    const gone = this.goneListeners.get(listenerId);
    if (!gone || --gone.results > 0) return;
    this.goneListeners.delete(listenerId);
    this.ready.unshift(...gone.waiting);
    if (this.running) this.startReady();
  }

  /** 410 Gone results that will not be acted on: written under a lease that had run out, or dropped. */
  private goneNotActedOn(results: readonly FinishedAttempt[]): void {
    for (const result of results) if (deactivatesListener(result)) this.letListenerGoOn(result.delivery.listenerId);
  }

  private settle(delivery: ClaimedDelivery): void {
    this.inFlight.delete(delivery.id);
    const perUrl = (this.inFlightPerUrl.get(delivery.urlId) ?? 1) - 1;
    if (perUrl > 0) this.inFlightPerUrl.set(delivery.urlId, perUrl);
    else this.inFlightPerUrl.delete(delivery.urlId);
    this.unhold(delivery);
    if (this.running) {
      this.startParked(delivery.urlId);
      this.startReady();
    }
    if (this.inFlight.size === 0) this.idleWaiters.splice(0).forEach((resolve) => resolve());
    this.claimIfWorthIt(delivery.urlId);
  }

  /** Writes finished attempts in batches, one flush at a time; on a database error it keeps them and tries again. */
  private flush(): Promise<void> {
    this.flushing ??= this.writeFinished().finally(() => {
      this.flushing = null;
      if (this.finished.length > 0) void this.flush();
    });
    return this.flushing;
  }

  /** Until every result is written, or given up on at shutdown. */
  private async flushAll(): Promise<void> {
    while (this.flushing || this.finished.length > 0) await this.flush();
  }

  private async writeFinished(): Promise<void> {
    try {
      await this.writeAllFinished();
    } finally {
      this.warnOfLostLeases();
    }
  }

  private async writeAllFinished(): Promise<void> {
    while (this.finished.length > 0) {
      // While requests are in flight more results are coming: waiting a moment for them turns one
      // transaction per result (SQLite answers that fast) into one per batch.
      if (this.running && this.finished.length < RESULT_BATCH_SIZE && this.inFlight.size > 0) await delay(RESULT_COALESCE_MS);
      const batch = this.finished.splice(0, this.resultBatchLimit);
      let written: Set<number>;
      try {
        written = await this.store.complete(this.owner, batch);
      } catch (error) {
        if (Date.now() > this.giveUpWritingAt) {
          // All at once: after failures the batches may be down to single results, each another wait.
          const dropped = [...batch, ...this.finished.splice(0)];
          this.goneNotActedOn(dropped);
          this.logger.error(
            `Shutdown: could not write ${dropped.length} delivery results; their deliveries are taken up again once their leases end: ${errorMessage(error)}`,
          );
          continue;
        }
        if (batch.length > 1) this.writeInHalves(batch, error);
        else await this.retryOrDrop(batch[0], error);
        continue;
      }
      this.resultWrites++;
      // Regrown only a while after a failure: a statement too large for the database would otherwise fail every other time.
      if (Date.now() >= this.resultBatchRegrowAt) this.resultBatchLimit = Math.min(RESULT_BATCH_SIZE, this.resultBatchLimit * 2);
      batch.forEach((result) => this.refusedResults.delete(result));
      this.announce(batch.filter((result) => written.has(result.delivery.id)));
      this.goneNotActedOn(batch.filter((result) => !written.has(result.delivery.id)));
      this.noteLostLeases(batch, written);
      // Claims held back by results waiting to be written (see claimRoom) go on.
      if (this.moreDue && this.worthClaiming(this.claimRoom())) this.wake();
    }
  }

  /** Results of deliveries whose lease ran out before they were written: another claim took them up. */
  private noteLostLeases(batch: FinishedAttempt[], written: Set<number>): void {
    for (const result of batch) if (result.result && !written.has(result.delivery.id)) this.lostLeases.push(result.delivery.id);
    if (Date.now() - this.lostLeasesWarnedAt >= LOST_LEASES_WARNING_INTERVAL_MS) this.warnOfLostLeases();
  }

  /** One warning for the leases noted lost since the last: after an outage, results are written one by one. */
  private warnOfLostLeases(): void {
    const lost = this.lostLeases.splice(0);
    if (lost.length === 0) return;
    this.lostLeasesWarnedAt = Date.now();
    this.logger.warn(
      `The attempts of ${lost.length} deliveries (${lost.slice(0, 10).join(', ')}${lost.length > 10 ? ', …' : ''}) were not logged: ` +
        `their leases (delivery.leaseMs ${this.options.delivery.leaseMs} ms) had run out before the results could be written, and another claim has taken them up`,
    );
  }

  /** A statement too large for the database, or one result it refuses: halves find out which, without a pause. */
  private writeInHalves(batch: FinishedAttempt[], error: unknown): void {
    this.finished.unshift(...batch);
    this.resultBatchLimit = Math.ceil(batch.length / 2);
    this.resultBatchRegrowAt = Date.now() + RESULT_BATCH_REGROW_MS;
    this.logger.warn(`Writing ${batch.length} delivery results failed, trying ${this.resultBatchLimit} at a time: ${errorMessage(error)}`);
  }

  /**
   * A single result that could not be written waits behind the others and is tried again. Once it
   * has failed REFUSED_RESULT_STRIKES times, each time after other results were written since its
   * last failure, the database refuses it rather than being away (a MySQL column whose character
   * set cannot hold the answer, a constraint of the host's): it is written with less in the attempt
   * log, first without its answer and error text, then without an attempt row, so that the attempt
   * still counts and the delivery is not sent again at every lease's end. Refused even so, it is
   * dropped and its delivery is sent again once its lease ends. While nothing can be written (an
   * outage) no strike counts, and every result is kept whole.
   */
  private async retryOrDrop(result: FinishedAttempt, error: unknown): Promise<void> {
    const refused = this.refusedResults.get(result) ?? { strikes: 0, writesAtLastFailure: this.resultWrites };
    const othersWritten = this.resultWrites > refused.writesAtLastFailure;
    if (othersWritten) refused.strikes++;
    if (refused.strikes >= REFUSED_RESULT_STRIKES) {
      this.refusedResults.delete(result);
      this.writeWithLessLogged(result, error);
      return;
    }
    this.refusedResults.set(result, { strikes: refused.strikes, writesAtLastFailure: this.resultWrites });
    this.finished.push(result);
    this.logger.error(`Writing the result of delivery ${result.delivery.id} failed, retrying: ${errorMessage(error)}`);
    // The others go on at once while they can be written; nothing written since the last failure may be an outage.
    if (!othersWritten) await delay(ERROR_BACKOFF_MS);
  }

  private writeWithLessLogged(result: FinishedAttempt, error: unknown): void {
    const lessened = lessLogged(result);
    const refusal = `The database refused the result of delivery ${result.delivery.id}`;
    if (!lessened) {
      this.goneNotActedOn([result]);
      this.logger.error(`${refusal}; the delivery is taken up again once its lease ends: ${errorMessage(error)}`);
      return;
    }
    this.finished.push(lessened);
    const without = lessened.logged === 'bare' ? "the answer and error text in its attempt's log" : 'a row in the attempt log';
    this.logger.error(`${refusal}; writing it without ${without}: ${errorMessage(error)}`);
  }

  private announce(batch: FinishedAttempt[]): void {
    for (const { delivery, result, completion } of batch) {
      if (!result) continue;
      const payload: WebhookDeliveryEventPayload = {
        deliveryId: delivery.id,
        eventId: delivery.eventId,
        listenerId: delivery.listenerId,
        spaceId: delivery.spaceId,
        attempt: delivery.attempts + 1,
        durationMs: result.durationMs,
        statusCode: result.statusCode,
        error: result.error,
        state:
          completion.kind === 'succeeded'
            ? WebhookDeliveryState.SUCCEEDED
            : completion.kind === 'retry'
              ? WebhookDeliveryState.PENDING
              : WebhookDeliveryState.ABANDONED,
        nextAttemptAt: completion.kind === 'retry' ? completion.nextAttemptAt : null,
      };
      if (completion.kind === 'succeeded') emitEvent(this.emitter, this.logger, WEBHOOK_DELIVERY_SUCCEEDED, payload);
      if (completion.kind === 'retry') {
        emitEvent(this.emitter, this.logger, WEBHOOK_DELIVERY_FAILED, payload);
        this.scheduleWake(completion.nextAttemptAt);
      }
      if (completion.kind === 'abandoned') {
        this.logger.warn(
          `Abandoned delivery ${delivery.id} to listener ${delivery.listenerId} after ${payload.attempt} attempt(s): ${result.error}`,
        );
        emitEvent(this.emitter, this.logger, WEBHOOK_DELIVERY_ABANDONED, payload);
        // Only for a result written under this instance's lease: a late answer to a lost lease changes nothing.
        if (completion.deactivatesListener) this.track(this.deactivateGone(delivery.listenerId, completion.deactivatesListener));
        else this.track(this.health.afterAbandoned(delivery.listenerId));
      }
    }
  }

  /**
   * After a 410 Gone was written: deactivates its listener, whose signal cancels what waits of it.
   * One that was no longer ACTIVE (another instance deactivated it first, say) has what waits of it
   * cancelled all the same; only a failed deactivation lets it go on.
   */
  private async deactivateGone(listenerId: number, reason: string): Promise<void> {
    try {
      if (!(await this.health.deactivate(listenerId, reason))) this.afterListenerStateChange(listenerId, CreationEntityState.INACTIVE);
    } finally {
      this.letListenerGoOn(listenerId);
    }
  }

  /** One timer for the earliest retry this instance scheduled; the poll covers the rest. */
  private scheduleWake(at: number): void {
    if (!this.running || at >= this.nextRetryAt) return;
    this.nextRetryAt = at;
    replaceTimeout(
      this.scheduler,
      this.retryTimer,
      () => {
        this.nextRetryAt = Number.POSITIVE_INFINITY;
        this.wakeForAnyUrl();
      },
      Math.max(0, at - Date.now()) + 5,
    );
  }

  private waitForIdle(timeoutMs: number): Promise<boolean> {
    if (this.inFlight.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

/** A result whose listener is to be deactivated once it is written: a 410 Gone. */
function deactivatesListener({ completion }: FinishedAttempt): boolean {
  return completion.kind === 'abandoned' && Boolean(completion.deactivatesListener);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
