import type { KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { WEBHOOK_RESOLVED_OPTIONS } from '../module/webhook.constants.js';
import type { ResolvedWebhookOptions } from '../module/webhook-options.interface.js';

/**
 * The thread's code as CommonJS text. Evaluated from text, it runs the same from the ESM and the
 * CommonJS build, neither of which would have to find a file of its own.
 */
const SIGNING_THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { sign } = require('node:crypto');
parentPort.on('message', ({ id, key, bodies }) => {
  try {
    const signatures = bodies.map((body) => sign('sha256', Buffer.from(body), { key, dsaEncoding: 'der' }).toString('base64'));
    parentPort.postMessage({ id, signatures });
  } catch (error) {
    parentPort.postMessage({ id, error: String(error && error.message ? error.message : error) });
  }
});
`;

interface SigningReply {
  id: number;
  signatures?: string[];
  error?: string;
}

interface PendingBatch {
  resolve: (signatures: string[]) => void;
  reject: (error: Error) => void;
  timeout: NodeJS.Timeout;
}

/**
 * How long a batch may wait for its signatures. A request prepared longer ago than this is signed
 * again as it starts anyway (PREPARED_REQUEST_MAX_AGE_MS), so waiting longer would gain nothing;
 * and a reply that never comes must not hold a request.
 */
const BATCH_TIMEOUT_MS = 1_000;

/** Failures of the thread (at start, by an error or an exit) after which requests are signed as they start, in libuv's thread pool. */
const THREAD_FAILURES_BEFORE_GIVING_UP = 3;

/**
 * Makes ECDSA signatures of many bodies in a thread of its own, a batch per message. Signing a
 * claim's bodies ahead this way costs the event loop one message per batch, where a signature in
 * libuv's thread pool costs it a callback each (see README, Performance). The thread starts with
 * the application where this instance delivers with `x-signature` (else with the first batch), and
 * ends when the application shuts down, after the dispatcher has drained. A thread that fails is
 * replaced by the next batch, up to THREAD_FAILURES_BEFORE_GIVING_UP times.
 */
@Injectable()
export class EcdsaSigningWorker implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('EcdsaSigningWorker');
  private worker: Worker | null = null;
  private readonly pending = new Map<number, PendingBatch>();
  private nextBatchId = 0;
  private failures = 0;
  /** Why batches are refused at once: shutdown, or a thread that failed too often. */
  private unavailable: string | null = null;

  constructor(@Inject(WEBHOOK_RESOLVED_OPTIONS) private readonly options: ResolvedWebhookOptions) {}

  /** Started ahead, so that the first deliveries do not wait for the thread to boot. */
  onApplicationBootstrap(): void {
    if (this.options.worker.enabled && this.options.signing.schemes.includes('x-signature')) this.running();
  }

  /** Base64 DER signatures of `bodies`, in their order; rejects when the thread cannot make them in time. */
  sign(key: KeyObject, bodies: readonly string[]): Promise<string[]> {
    const worker = this.running();
    if (!worker) return Promise.reject(new Error(this.unavailable ?? 'The ECDSA signing thread could not start'));
    const id = this.nextBatchId++;
    return new Promise<string[]>((resolve, reject) => {
      const timeout = setTimeout(() => this.fail(id, new Error(`No ECDSA signatures within ${BATCH_TIMEOUT_MS} ms`)), BATCH_TIMEOUT_MS);
      timeout.unref();
      this.pending.set(id, { resolve, reject, timeout });
      try {
        worker.postMessage({ id, key, bodies });
      } catch (error) {
        this.fail(id, error as Error);
      }
    });
  }

  async onApplicationShutdown(): Promise<void> {
    this.unavailable = 'The ECDSA signing thread has shut down';
    const worker = this.worker;
    this.worker = null;
    await worker?.terminate();
    this.failPending(new Error(this.unavailable));
  }

  /** The thread, started if there is none; `null` when it cannot be. */
  private running(): Worker | null {
    if (this.worker || this.unavailable) return this.worker;
    try {
      this.worker = this.startWorker();
    } catch (error) {
      this.failed((error as Error).message);
    }
    return this.worker;
  }

  private startWorker(): Worker {
    const worker = new Worker(SIGNING_THREAD_SOURCE, { eval: true });
    // Never what keeps the process alive: signatures are only awaited while requests are.
    worker.unref();
    worker.on('message', (reply: SigningReply) => this.settle(reply));
    worker.on('error', (error) => this.stopped(worker, error.message));
    worker.on('exit', (code) => this.stopped(worker, `exited with code ${code}`));
    return worker;
  }

  private settle({ id, signatures, error }: SigningReply): void {
    if (signatures) this.take(id)?.resolve(signatures);
    else this.fail(id, new Error(error ?? 'ECDSA signing failed'));
  }

  private fail(id: number, error: Error): void {
    this.take(id)?.reject(error);
  }

  private take(id: number): PendingBatch | undefined {
    const batch = this.pending.get(id);
    if (!batch) return undefined;
    this.pending.delete(id);
    clearTimeout(batch.timeout);
    return batch;
  }

  /** A thread that failed or ended: the batches it held fail, and their requests are signed as they start. */
  private stopped(worker: Worker, reason: string): void {
    if (this.worker !== worker) return;
    this.worker = null;
    this.failed(reason);
    this.failPending(new Error(`The ECDSA signing thread stopped: ${reason}`));
  }

  private failed(reason: string): void {
    this.failures++;
    if (this.failures < THREAD_FAILURES_BEFORE_GIVING_UP) {
      this.logger.warn(
        `ECDSA signing thread stopped (${reason}); its requests are signed as they start, and the next claim starts a new thread`,
      );
      return;
    }
    this.unavailable = `The ECDSA signing thread failed ${this.failures} times`;
    this.logger.error(
      `${this.unavailable}, the last time: ${reason}; from now on every request is signed as it starts, in libuv's thread pool`,
    );
  }

  private failPending(error: Error): void {
    for (const id of [...this.pending.keys()]) this.fail(id, error);
  }
}
