import { In, type EntityManager } from 'typeorm';
import { WebhookStateError } from '../errors/webhook.errors.js';
import type { ManagedWebhookObject } from '../model/managed-object.entity.js';
import { WebhookListener } from '../model/webhook-listener.entity.js';
import { LIVE_STATES } from './lifecycle.js';

/** A URL or identity that a live listener still points at cannot be deleted. */
export async function refuseWhileUsedByLiveListeners(
  manager: EntityManager,
  relation: 'url' | 'identity',
  used: ManagedWebhookObject,
): Promise<void> {
  const users = await manager.count(WebhookListener, {
    where: { [relation]: { id: used.id }, linkedSpaceId: used.linkedSpaceId, state: In([...LIVE_STATES]) },
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
