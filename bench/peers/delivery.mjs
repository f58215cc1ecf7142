// What the queue peers do per job, as the module does per delivery: build the JSON body from the queued ids at delivery
// time, sign it the Standard Webhooks way and POST it through one pool of IN_FLIGHT connections.
import { createHmac, randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';

/** Deliveries in flight in total, as `delivery.concurrency` of the module in the benchmark. */
export const IN_FLIGHT = 64;

export const now = () => performance.timeOrigin + performance.now();

/** The queued data of the i-th event: ids and the URL; the body is built only when it is delivered. */
export function eventData(i, url) {
  return {
    eventId: i + 1,
    entityId: i + 1,
    entityTypeId: 1001,
    entityName: 'Order',
    spaceId: 1,
    listenerId: 1,
    state: 'CONFIRMED',
    createdOn: Date.now(),
    url,
  };
}

export function createSender() {
  const key = randomBytes(32);
  const agent = new Agent({ connections: IN_FLIGHT, keepAliveTimeout: 30_000 });
  return {
    /** Resolves once the receiver answered 2xx; throws otherwise, so the queue retries the job. */
    async deliver(data) {
      const body = JSON.stringify({
        eventId: data.eventId,
        entityId: data.entityId,
        listenerEntityId: data.entityTypeId,
        listenerEntityTechnicalName: data.entityName,
        spaceId: data.spaceId,
        webhookListenerId: data.listenerId,
        timestamp: `${new Date(data.createdOn).toISOString().slice(0, 19)}+0000`,
        state: data.state,
      });
      const id = `msg_${data.eventId}`;
      const timestamp = Math.floor(Date.now() / 1000);
      const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
      const response = await request(data.url, {
        method: 'POST',
        dispatcher: agent,
        body,
        headers: {
          'content-type': 'application/json',
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': `v1,${signature}`,
        },
      });
      await response.body.dump();
      if (response.statusCode < 200 || response.statusCode >= 300) throw new Error(`receiver answered ${response.statusCode}`);
    },
    close: () => agent.close(),
  };
}
