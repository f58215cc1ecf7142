const NOTHING_FORGOTTEN: readonly [never, never][] = [];

/**
 * Sets `key` to `value` as the newest entry of `map` and forgets the oldest entries beyond `max`, so
 * that a cache keeps what was set last. Returns the entries it forgot, oldest first.
 */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, max: number): readonly [K, V][] {
  map.delete(key);
  map.set(key, value);
  if (map.size <= max) return NOTHING_FORGOTTEN;
  const forgotten: [K, V][] = [];
  for (const entry of map) {
    if (map.size <= max) break;
    map.delete(entry[0]);
    forgotten.push(entry);
  }
  return forgotten;
}
