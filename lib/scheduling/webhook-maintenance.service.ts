import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { errorMessage } from '../errors/error-message.js';
import { ListenerChangeNotifier } from '../management/listener-change.notifier.js';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookIdentity } from '../model/webhook-identity.entity.js';
import { WebhookListener } from '../model/webhook-listener.entity.js';
import { WebhookUrl } from '../model/webhook-url.entity.js';
import { WEBHOOK_RESOLVED_OPTIONS, WEBHOOK_TIMER_PREFIX } from '../module/webhook.constants.js';
import type { ResolvedWebhookOptions } from '../module/webhook-options.interface.js';
import { MaintenanceStore } from './maintenance.store.js';
import {
  removeInterval,
  removeTimeout,
  replaceInterval,
  replaceTimeout,
  SchedulerRegistry,
  WEBHOOK_SCHEDULER_REGISTRY,
} from './scheduler.js';

/** Events without deliveries are kept at least this long (see removeOrphanEvents). */
const YOUNG_EVENT_MS = 60_000;

/**
 * The scheduled jobs: finishing deletions (DELETING → DELETED), purging objects past their planned
 * purge date, and removing old delivery logs. A failing run is logged and the timer goes on; a run
 * never overlaps the previous one of the same job.
 */
@Injectable()
export class WebhookMaintenance implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('WebhookMaintenance');
  private readonly running = new Map<string, Promise<void>>();
  private started = false;

  constructor(
    @Inject(WEBHOOK_RESOLVED_OPTIONS) private readonly options: ResolvedWebhookOptions,
    @Inject(WEBHOOK_SCHEDULER_REGISTRY) private readonly scheduler: SchedulerRegistry,
    private readonly store: MaintenanceStore,
    private readonly changes: ListenerChangeNotifier,
    @Inject(WEBHOOK_TIMER_PREFIX) private readonly timerPrefix: string,
  ) {}

  private readonly lifecycleJob = `${this.timerPrefix}:lifecycle`;
  private readonly purgeJob = `${this.timerPrefix}:purge`;
  private readonly retentionJob = `${this.timerPrefix}:retention`;

  onApplicationBootstrap(): void {
    if (!this.options.worker.enabled) return;
    this.started = true;
    const { lifecycleIntervalMs, purgeIntervalMs, retentionIntervalMs } = this.options.scheduler;
    this.every(this.lifecycleJob, () => this.finishDeletions(), lifecycleIntervalMs);
    this.every(this.purgeJob, () => this.purge(), purgeIntervalMs, lifecycleIntervalMs);
    this.every(this.retentionJob, () => this.expireDeliveryLog(), retentionIntervalMs, lifecycleIntervalMs);
  }

  async onModuleDestroy(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    for (const name of [this.lifecycleJob, this.purgeJob, this.retentionJob]) {
      removeInterval(this.scheduler, name);
      removeTimeout(this.scheduler, firstRunOf(name));
    }
    await Promise.allSettled(this.running.values());
  }

  /**
   * Runs `job` every `intervalMs`, and once `firstAfterMs` after the start when that comes sooner:
   * instances replaced more often than a long interval (frequent deploys) would otherwise never run it.
   */
  private every(name: string, job: () => Promise<void>, intervalMs: number, firstAfterMs = intervalMs): void {
    replaceInterval(this.scheduler, name, () => void this.run(name, job), intervalMs);
    if (firstAfterMs < intervalMs) replaceTimeout(this.scheduler, firstRunOf(name), () => void this.run(name, job), firstAfterMs);
  }

  /** DELETING → DELETED: cancels pending deliveries of deleting listeners, then finishes what has nothing in flight. */
  async finishDeletions(): Promise<void> {
    const now = Date.now();
    const cancelled = await this.store.cancelDeliveriesOfDeletingListeners(now);
    let finished = 0;
    for (const target of [WebhookListener, WebhookUrl, WebhookIdentity]) {
      for (const object of await this.store.finishableDeletions(target)) {
        if (!(await this.store.markDeleted(target, object.id, this.options.retention.deletedListenerPurgeAfterMs))) continue;
        finished++;
        if (target === WebhookListener)
          this.changes.committed({ ...object, entity: object.entity! }, CreationEntityState.DELETING, CreationEntityState.DELETED);
      }
    }
    if (cancelled + finished > 0)
      this.logger.debug(`Cancelled ${cancelled} deliveries of deleted listeners; ${finished} object(s) now DELETED`);
  }

  /** Removes DELETED objects past their planned purge date, listeners first (URLs and identities may be theirs). */
  async purge(): Promise<void> {
    let deliveries = 0;
    let objects = 0;
    for (const id of await this.store.purgeable(WebhookListener)) {
      const purged = await this.store.purgeListener(id);
      deliveries += purged.deliveries;
      if (purged.purged) objects++;
    }
    for (const target of [WebhookUrl, WebhookIdentity] as const) {
      for (const id of await this.store.purgeable(target)) {
        await this.store.purgeObject(target, id);
        objects++;
      }
    }
    const events = await this.removeOrphanEvents(Date.now());
    if (objects + deliveries + events > 0) this.logger.debug(`Purged ${objects} object(s), ${deliveries} deliveries, ${events} events`);
  }

  /** Removes finished deliveries, their attempts, and then unreferenced events, older than `retention.deliveryLogTtlMs`. */
  async expireDeliveryLog(): Promise<void> {
    const cutoff = Date.now() - this.options.retention.deliveryLogTtlMs;
    const deliveries = await this.store.removeFinishedDeliveries(cutoff);
    const events = await this.removeOrphanEvents(cutoff);
    if (deliveries + events > 0)
      this.logger.debug(`Removed ${deliveries} finished deliveries and ${events} events older than ${new Date(cutoff).toISOString()}`);
  }

  /**
   * Events without deliveries older than `before` (epoch ms), and than a minute: a younger one may
   * still be having its deliveries written (on MySQL and MariaDB, a write outside a transaction
   * commits its event a statement before its deliveries).
   */
  private removeOrphanEvents(before: number): Promise<number> {
    return this.store.removeOrphanEvents(Math.min(before, Date.now() - YOUNG_EVENT_MS));
  }

  private run(name: string, job: () => Promise<void>): Promise<void> {
    const current = this.running.get(name);
    if (current) return current;
    const run = job()
      .catch((error: unknown) => this.logger.error(`Job ${name} failed; it runs again at its next interval: ${errorMessage(error)}`))
      .finally(() => this.running.delete(name));
    this.running.set(name, run);
    return run;
  }
}

function firstRunOf(jobName: string): string {
  return `${jobName}:first-run`;
}
