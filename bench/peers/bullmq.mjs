// P1 peer: the same deliveries through BullMQ 6 on Redis (REDIS_URL, default redis://127.0.0.1:6379).
//
// Tuning, 20 000 jobs against the raw ceiling measured beside it, on a shared 2-core machine (medians of 3 to 5 runs; single
// runs spread from 0.20 to 0.47):
// - one Worker with concurrency 64: about 0.29 of the ceiling; two Workers × 32 (0.27) and four × 16 the same within the
//   noise, as all share one event loop, so one Worker is kept.
// - the Node process is the bottleneck: its CPU time equals the wall time of the run; Redis uses about 40 % of a core.
// - ioredis `enableAutoPipelining` on the worker connection: no gain (0.24–0.25), left off.
// - `removeOnComplete: true` (0.29), keeping completed jobs (0.26) or `{ count: 1000 }` (0.32): the same within the noise;
//   true is kept, as usual for throughput, and it leaves less to clean up.
// - `maxRetriesPerRequest: null`, as BullMQ wants for workers; the Worker opens its own connections when it starts.
import { Queue, Worker } from 'bullmq';
import { IN_FLIGHT, createSender, eventData, now } from './delivery.mjs';

const REDIS = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const CONNECTION = { host: REDIS.hostname, port: Number(REDIS.port || 6379), maxRetriesPerRequest: null };
const QUEUE = 'bench-webhooks';
const CHUNK = 1_000;
/** Comparable to the module's schedule: a few attempts, the first retry after 5 s. */
const JOB_OPTIONS = { attempts: 5, backoff: { type: 'exponential', delay: 5_000 }, removeOnComplete: true, removeOnFail: false };

/** P1 for BullMQ: `count` queued jobs to receiver acknowledgements, 64 in flight (includes the worker's start). */
export async function bullmqThroughput(receiver, count) {
  const queue = new Queue(QUEUE, { connection: CONNECTION });
  await queue.obliterate({ force: true });
  for (let first = 0; first < count; first += CHUNK) {
    const size = Math.min(CHUNK, count - first);
    await queue.addBulk(
      Array.from({ length: size }, (_, i) => ({ name: 'deliver', data: eventData(first + i, receiver.url), opts: JOB_OPTIONS })),
    );
  }

  const reached = receiver.expect(count);
  const start = now();
  const sender = createSender();
  const worker = new Worker(QUEUE, (job) => sender.deliver(job.data), { connection: CONNECTION, concurrency: IN_FLIGHT });
  const { at } = await reached;
  await worker.close();
  await sender.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return count / ((at - start) / 1000);
}
