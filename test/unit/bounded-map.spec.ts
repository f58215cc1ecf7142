import type { EntityManager, QueryRunner } from 'typeorm';
import { setNewest } from '../../lib/caching/bounded-map.js';
import { ListenerMatchCache } from '../../lib/capture/listener-match.cache.js';
import { LISTENER_CACHE_MAX_ENTRIES } from '../../lib/capture/capture.constants.js';
import type { MatchableListener, WebhookListenerRepository } from '../../lib/persistence/webhook-listener.repository.js';

describe('setNewest', () => {
  it('keeps the entries set last, and returns the ones it forgot, oldest first', () => {
    const map = new Map<string, number>();
    for (const [key, value] of [
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ] as const)
      setNewest(map, key, value, 3);
    expect(setNewest(map, 'a', 4, 3)).toEqual([]);
    expect(setNewest(map, 'd', 5, 2)).toEqual([
      ['b', 2],
      ['c', 3],
    ]);
    expect([...map]).toEqual([
      ['a', 4],
      ['d', 5],
    ]);
  });
});

describe('ListenerMatchCache beyond its most remembered invalidations', () => {
  it('does not keep a list read in a transaction that began before its key was invalidated, once that key is forgotten', async () => {
    let reads = 0;
    const repository = {
      findActiveForEntity: async (): Promise<MatchableListener[]> => {
        reads++;
        return [];
      },
    } as unknown as WebhookListenerRepository;
    const cache = new ListenerMatchCache(repository);
    const queryRunner = { isTransactionActive: true } as QueryRunner;
    const inTransaction = { queryRunner } as EntityManager;

    cache.transactionBegins(queryRunner);
    cache.invalidate(1, 'Order');
    for (let space = 2; space <= LISTENER_CACHE_MAX_ENTRIES + 1; space++) cache.invalidate(space, 'Order');
    await cache.activeListeners(inTransaction, 1, 'Order');

    expect(cache.cachedListeners(1, 'Order')).toBeUndefined();
    await cache.activeListeners({ queryRunner: undefined } as EntityManager, 1, 'Order');
    expect(cache.cachedListeners(1, 'Order')).toEqual([]);
    expect(reads).toBe(2);
  });
});
