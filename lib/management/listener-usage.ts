import { In, IsNull, type EntityManager, type EntityTarget } from 'typeorm';
import { WebhookStateError } from '../errors/webhook.errors.js';
import type { ManagedWebhookObject } from '../model/managed-object.entity.js';
import type { WebhookIdentity } from '../model/webhook-identity.entity.js';
import type { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookListener } from '../model/webhook-listener.entity.js';
import { isSqlite } from '../persistence/transaction.js';
import { LIVE_STATES } from './lifecycle.js';

/**
 * A URL or identity that a live listener still points at cannot be deleted. The space's default
 * identity is also used by every live listener of the space that names no identity: deleted, it
 * would be replaced by a new one with other keys, which their receivers would refuse.
 */
export async function refuseWhileUsedByLiveListeners(
  manager: EntityManager,
  relation: 'url' | 'identity',
  used: ManagedWebhookObject,
): Promise<void> {
  const live = { linkedSpaceId: used.linkedSpaceId, state: In([...LIVE_STATES]) };
  const signsForUnnamed = relation === 'identity' && (used as WebhookIdentity).spaceDefault;
  const users = await manager.count(WebhookListener, {
    where: [{ ...live, [relation]: { id: used.id } }, ...(signsForUnnamed ? [{ ...live, identity: IsNull() }] : [])],
  });
  if (users > 0) {
    const entityName = relation === 'url' ? 'WebhookUrl' : 'WebhookIdentity';
    throw new WebhookStateError(
      entityName,
      used.id,
      used.state,
      'DELETING',
      `${entityName} ${used.id} is used by ${users} live listener(s); delete or move them first`,
    );
  }
}

/**
 * The state of an object of the space, read with a lock on its row for the rest of the transaction
 * (`undefined` when there is none): `share` by a listener that is created to use it, `update` by
 * its delete, so that the delete's look for live users and the listener's look at its state cannot
 * both pass. SQLite runs one writing transaction at a time and takes no row locks.
 */
export async function lockedState(
  manager: EntityManager,
  target: EntityTarget<ManagedWebhookObject>,
  spaceId: number,
  id: number,
  lock: 'share' | 'update',
): Promise<CreationEntityState | undefined> {
  const qb = manager
    .createQueryBuilder(target, 'o')
    .select('o.state', 'state')
    .where('o.id = :id AND o.linkedSpaceId = :spaceId', { id, spaceId });
  if (!isSqlite(manager.connection)) qb.setLock(lock === 'share' ? 'pessimistic_read' : 'pessimistic_write');
  const row: { state: CreationEntityState } | undefined = await qb.getRawOne();
  return row?.state;
}
