/** Adds `item` to the group of `key`, which it starts if there is none yet. */
export function addToGroup<K, V>(groups: Map<K, V[]>, key: K, item: V): void {
  const group = groups.get(key);
  if (group) group.push(item);
  else groups.set(key, [item]);
}
