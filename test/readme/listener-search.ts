import type { WebhookListener, WebhookListenerService } from '../../lib/index.js';

/** The ACTIVE listeners of a space whose URL contains `host`, newest first. */
export function activeListenersFor(listeners: WebhookListenerService, spaceId: number, host: string): Promise<WebhookListener[]> {
  return listeners.search(spaceId, {
    filter: {
      type: 'AND',
      children: [
        { type: 'LEAF', fieldName: 'state', operator: 'EQUALS', value: 'ACTIVE' },
        { type: 'LEAF', fieldName: 'url.url', operator: 'CONTAINS', value: host },
      ],
    },
    orderBys: [{ fieldName: 'id', sorting: 'DESC' }],
    numberOfEntities: 20,
  });
}
