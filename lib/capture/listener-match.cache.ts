import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { WebhookListenerRepository, type MatchableListener } from '../persistence/webhook-listener.repository.js';
import { LISTENER_CACHE_MAX_ENTRIES, LISTENER_CACHE_TTL_MS } from './capture.constants.js';

interface CacheEntry {
  listeners: MatchableListener[];
  expiresAt: number;
}

/**
 * ACTIVE listeners per (space, entity), so that most captured changes cost no query. Exact for
 * changes made through this instance's services (they invalidate after commit); listeners changed
 * by another instance are seen within LISTENER_CACHE_TTL_MS.
 */
@Injectable()
export class ListenerMatchCache {
  private readonly entries = new Map<string, CacheEntry>();
  /** Bumped by each invalidation, so that a load that raced with one is not stored. */
  private readonly generations = new Map<string, number>();

  constructor(private readonly repository: WebhookListenerRepository) {}

  async activeListeners(manager: EntityManager, spaceId: number, entityName: string): Promise<MatchableListener[]> {
    const cached = this.cachedListeners(spaceId, entityName);
    if (cached) return cached;
    const key = cacheKey(spaceId, entityName);
    const generation = this.generations.get(key) ?? 0;
    const listeners = await this.repository.findActiveForEntity(spaceId, entityName, manager);
    if ((this.generations.get(key) ?? 0) === generation) this.store(key, listeners);
    return listeners;
  }

  /** The cached list while it is fresh; `undefined` when it has to be read. */
  cachedListeners(spaceId: number, entityName: string): MatchableListener[] | undefined {
    const cached = this.entries.get(cacheKey(spaceId, entityName));
    return cached && cached.expiresAt > Date.now() ? cached.listeners : undefined;
  }

  invalidate(spaceId: number, entityName: string): void {
    const key = cacheKey(spaceId, entityName);
    this.entries.delete(key);
    this.generations.set(key, (this.generations.get(key) ?? 0) + 1);
  }

  private store(key: string, listeners: MatchableListener[]): void {
    this.entries.delete(key);
    this.entries.set(key, { listeners, expiresAt: Date.now() + LISTENER_CACHE_TTL_MS });
    if (this.entries.size > LISTENER_CACHE_MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
  }
}

function cacheKey(spaceId: number, entityName: string): string {
  return `${spaceId}\u0000${entityName}`;
}
