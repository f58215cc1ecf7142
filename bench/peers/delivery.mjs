// What the queue peers do per job, as the module does per delivery: build the JSON body from the queued ids at delivery
// time, sign it the Standard Webhooks way and POST it through one pool of IN_FLIGHT connections.
import { createHmac, randomBytes } from 'node:crypto';
import { Agent } from 'undici';

/** Deliveries in flight in total, as `delivery.concurrency` of the module in the benchmark. */
export const IN_FLIGHT = 64;

/** Headers the module's requests carry besides their signatures. */
export const PLAIN_HEADERS = { 'content-type': 'application/json', 'user-agent': 'nestjs-webhook-listener' };

/**
 * POSTs `body` through undici's `dispatch()`, the way the module sends (no response stream, the answer
 * read and dropped), and resolves to the status code: the ceiling and the peers send the same way.
 */
export function post(agent, target, body, headers) {
  return new Promise((resolve, reject) => {
    let statusCode = 0;
    agent.dispatch(
      { origin: target.origin, path: target.path, method: 'POST', body, headers },
      {
        onRequestStart() {},
        onResponseStart(_controller, status) {
          statusCode = status;
        },
        onResponseData() {},
        onResponseEnd() {
          resolve(statusCode);
        },
        onResponseError(_controller, error) {
          reject(error);
        },
      },
    );
  });
}

/** The origin and path of a URL, as `post()` takes them. */
export function targetOf(url) {
  const parsed = new URL(url);
  return { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
}

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
  const parsed = new Map();
  const targets = (url) => parsed.get(url) ?? parsed.set(url, targetOf(url)).get(url);
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
      const statusCode = await post(agent, targets(data.url), body, {
        ...PLAIN_HEADERS,
        'webhook-id': id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': `v1,${signature}`,
      });
      if (statusCode < 200 || statusCode >= 300) throw new Error(`receiver answered ${statusCode}`);
    },
    close: () => agent.close(),
  };
}
