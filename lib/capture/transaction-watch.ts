import { Inject, Injectable } from '@nestjs/common';
import type { DataSource, QueryRunner } from 'typeorm';
import { WebhookTransactionEndedError } from '../errors/webhook.errors.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { GateClosedForNowError, isSqlite, transactionDepth } from '../persistence/transaction.js';

/**
 * How long a capture waits for a savepoint opened above its change (by another subscriber, say) to
 * end before it gives up on the change, which then fails.
 */
const LEVEL_WAIT_MS = 10_000;

/** The transaction level a change was made at, as a capture writes its event. */
export interface ChangeLevel {
  /** The depth of the change's transaction level on its query runner (0 outside any). */
  readonly depth: number;
  /**
   * Resolves once no savepoint is open or being opened above the change's level on its connection
   * (or after LEVEL_WAIT_MS): a statement sent inside one would be undone with it, not with the change.
   */
  settled(): Promise<void>;
  /**
   * Returns when a statement sent now runs at the change's level. Throws `WebhookTransactionEndedError`
   * once the query runner was released, a rollback began at that level or an outer one, or the level
   * ended; while a level above is open or opening, `GateClosedForNowError` (wait for `settled()`
   * again), and after LEVEL_WAIT_MS of that, `WebhookTransactionEndedError`.
   */
  check(): void;
}

/** What happened on one query runner: rollbacks (how many, and the latest count at each depth), a level being opened, and waiters. */
interface Watched {
  rollbacks: number;
  latestRollbackAtDepth: number[];
  opening: boolean;
  waiters: (() => void)[];
}

/**
 * Follows, per query runner, the rollbacks (of transactions and of savepoints) that begin and the
 * levels opened and closed. When another subscriber of the same write fails, TypeORM rolls back at
 * once, without waiting for the capture, which may still be reading listeners: its statements would
 * then run after the ROLLBACK, outside any transaction. When another subscriber opens a savepoint
 * meanwhile, they would run inside it and be undone with it, while the change stays.
 */
@Injectable()
export class TransactionWatch {
  private readonly watched = new WeakMap<QueryRunner, Watched>();
  /**
   * On SQLite TypeORM runs every transaction on one query runner, so one flow's commit can end the
   * savepoint of another; the change then belongs to the level below, where its event still goes.
   */
  private readonly sharesOneRunner: boolean;

  constructor(@Inject(WEBHOOK_DATA_SOURCE) dataSource: DataSource) {
    this.sharesOneRunner = isSqlite(dataSource);
  }

  /** Called as TypeORM begins a rollback, before it sends it; the depth is the level being rolled back. */
  rollbackBegins(queryRunner: QueryRunner): void {
    const watched = this.watchedOf(queryRunner);
    watched.latestRollbackAtDepth[transactionDepth(queryRunner)] = ++watched.rollbacks;
    watched.opening = false;
  }

  /** Called as TypeORM begins to open a transaction or a savepoint, before it sends it. */
  levelOpens(queryRunner: QueryRunner): void {
    this.watchedOf(queryRunner).opening = true;
  }

  /** Called once a level was opened, committed or rolled back. */
  levelChanged(queryRunner: QueryRunner): void {
    const watched = this.watchedOf(queryRunner);
    watched.opening = false;
    [...watched.waiters].forEach((wake) => wake());
  }

  /** The level of a change made through `queryRunner` now. */
  watch(queryRunner: QueryRunner | undefined): ChangeLevel {
    if (!queryRunner) return { depth: 0, settled: () => Promise.resolve(), check: () => undefined };
    const depth = transactionDepth(queryRunner);
    const watched = this.watchedOf(queryRunner);
    const rollbacksAtChange = watched.rollbacks;
    const above = () => watched.opening || transactionDepth(queryRunner) > depth;
    // Each statement may wait LEVEL_WAIT_MS from the moment it first finds a level above.
    let giveUpAt: number | undefined;
    return {
      depth,
      settled: async () => {
        if (above()) giveUpAt ??= Date.now() + LEVEL_WAIT_MS;
        while (above() && Date.now() < giveUpAt!) await this.nextChange(watched, giveUpAt! - Date.now());
      },
      check: () => {
        const rolledBack = watched.latestRollbackAtDepth.slice(0, depth + 1).some((count) => count > rollbacksAtChange);
        const levelEnded = !this.sharesOneRunner && transactionDepth(queryRunner) < depth;
        if (queryRunner.isReleased || rolledBack || levelEnded) throw new WebhookTransactionEndedError();
        if (!above()) {
          giveUpAt = undefined;
          return;
        }
        if (giveUpAt !== undefined && Date.now() >= giveUpAt) throw new WebhookTransactionEndedError();
        throw new GateClosedForNowError();
      },
    };
  }

  private nextChange(watched: Watched, waitMs: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        const index = watched.waiters.indexOf(wake);
        if (index >= 0) watched.waiters.splice(index, 1);
        resolve();
      };
      const timer = setTimeout(wake, waitMs);
      timer.unref();
      watched.waiters.push(wake);
    });
  }

  private watchedOf(queryRunner: QueryRunner): Watched {
    let watched = this.watched.get(queryRunner);
    if (!watched) {
      watched = { rollbacks: 0, latestRollbackAtDepth: [], opening: false, waiters: [] };
      this.watched.set(queryRunner, watched);
    }
    return watched;
  }
}
