import { Injectable } from '@nestjs/common';
import type { EntityManager, QueryRunner } from 'typeorm';
import { setNewest } from '../caching/bounded-map.js';
import { isMysqlFamily, transactionDepth } from '../persistence/transaction.js';
import { WebhookListenerRepository, type MatchableListener } from '../persistence/webhook-listener.repository.js';
import { LISTENER_CACHE_MAX_ENTRIES, LISTENER_CACHE_TTL_MS } from './capture.constants.js';

interface CacheEntry {
  listeners: MatchableListener[];
  expiresAt: number;
}

/** What a read could see: the invalidations counted and the time when its view of the database began. */
interface View {
  invalidations: number;
  since: number;
}

/**
 * ACTIVE listeners per (space, entity), so that most captured changes cost no query. Exact for
 * changes made through this instance's services (they invalidate after commit); listeners changed
 * by another instance are seen within LISTENER_CACHE_TTL_MS.
 */
@Injectable()
export class ListenerMatchCache {
  private readonly entries = new Map<string, CacheEntry>();
  /** Counts invalidations, so that a key's last invalidation can be ordered against a load or a transaction. */
  private invalidations = 0;
  /** The count of invalidations when each key was last invalidated, for the keys invalidated last. */
  private readonly invalidatedAt = new Map<string, number>();
  /** The latest count forgotten from `invalidatedAt`: a key not in it may have been invalidated as late as that. */
  private forgottenUpTo = 0;
  /** The view of each open transaction as it began. */
  private readonly transactionsBegun = new WeakMap<QueryRunner, View>();

  constructor(private readonly repository: WebhookListenerRepository) {}

  /**
   * A list read inside a transaction comes from that transaction's view, which under REPEATABLE READ
   * (MySQL's default) or SERIALIZABLE is as old as the transaction: it is kept only if the key was not
   * invalidated since the transaction began, and only until LISTENER_CACHE_TTL_MS after it began, so
   * that another instance's changes are still seen within that time. A list read outside one is kept
   * unless the key was invalidated while it was read, and only if the connection was outside any
   * transaction indeed: the application may have opened one with SQL of its own, which TypeORM does
   * not know of, whose view may be older.
   */
  async activeListeners(manager: EntityManager, spaceId: number, entityName: string): Promise<MatchableListener[]> {
    const cached = this.cachedListeners(spaceId, entityName);
    if (cached) return cached;
    const key = cacheKey(spaceId, entityName);
    const queryRunner = manager.queryRunner;
    const inTransaction = queryRunner?.isTransactionActive === true;
    const view = inTransaction ? this.transactionsBegun.get(queryRunner) : this.viewNow();
    const listeners = await this.repository.findActiveForEntity(spaceId, entityName, manager);
    if (!view || !(inTransaction || !queryRunner || (await outsideAnyTransaction(manager)))) return listeners;
    // Checked after the last await: a change of a listener committed meanwhile invalidated the key.
    if ((this.invalidatedAt.get(key) ?? this.forgottenUpTo) <= view.invalidations) this.store(key, listeners, view.since);
    return listeners;
  }

  /** Called as a transaction begins on the DataSource (its outermost level only). */
  transactionBegins(queryRunner: QueryRunner): void {
    if (transactionDepth(queryRunner) <= 1) this.transactionsBegun.set(queryRunner, this.viewNow());
  }

  /** The cached list while it is fresh; `undefined` when it has to be read. */
  cachedListeners(spaceId: number, entityName: string): MatchableListener[] | undefined {
    const cached = this.entries.get(cacheKey(spaceId, entityName));
    return cached && cached.expiresAt > Date.now() ? cached.listeners : undefined;
  }

  invalidate(spaceId: number, entityName: string): void {
    const key = cacheKey(spaceId, entityName);
    this.entries.delete(key);
    for (const [, at] of setNewest(this.invalidatedAt, key, ++this.invalidations, LISTENER_CACHE_MAX_ENTRIES)) this.forgottenUpTo = at;
  }

  private viewNow(): View {
    return { invalidations: this.invalidations, since: Date.now() };
  }

  private store(key: string, listeners: MatchableListener[], viewSince: number): void {
    const expiresAt = viewSince + LISTENER_CACHE_TTL_MS;
    if (expiresAt > Date.now()) setNewest(this.entries, key, { listeners, expiresAt }, LISTENER_CACHE_MAX_ENTRIES);
  }
}

function cacheKey(spaceId: number, entityName: string): string {
  return `${spaceId}\u0000${entityName}`;
}

/** The bit of a MySQL or MariaDB server's status, sent with every answer, that says a transaction is open. */
const SERVER_STATUS_IN_TRANS = 1;

/**
 * Whether the connection of `manager`, outside any transaction TypeORM knows of, is outside one opened
 * with SQL of the application's own as well. PostgreSQL runs each statement outside a transaction as
 * one of its own, which began with it; MySQL and MariaDB say so in the status of every answer. SQLite's
 * one connection sees what was committed, in a transaction or not. A check that fails counts as inside.
 */
async function outsideAnyTransaction(manager: EntityManager): Promise<boolean> {
  try {
    if (manager.connection.options.type === 'postgres') {
      return (await manager.query('SELECT transaction_timestamp() = statement_timestamp() AS outside'))[0].outside === true;
    }
    if (isMysqlFamily(manager.connection)) {
      const { serverStatus } = (await manager.query('DO 0')) as { serverStatus?: number };
      return serverStatus !== undefined && (serverStatus & SERVER_STATUS_IN_TRANS) === 0;
    }
    return true;
  } catch {
    return false;
  }
}
