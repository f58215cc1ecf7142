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
}

/**
 * Makes ECDSA signatures of many bodies in a thread of its own, a batch per message. Signing a
 * claim's bodies ahead this way costs the event loop one message per batch, where a signature in
 * libuv's thread pool costs it a callback each (see README, Performance). The thread starts with
 * the application where this instance delivers with `x-signature` (else with the first batch), and
 * ends when the application shuts down, after the dispatcher has drained.
 */
@Injectable()
export class EcdsaSigningWorker implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('EcdsaSigningWorker');
  private worker: Worker | null = null;
  private readonly pending = new Map<number, PendingBatch>();
  private nextBatchId = 0;
  private closed = false;

  constructor(@Inject(WEBHOOK_RESOLVED_OPTIONS) private readonly options: ResolvedWebhookOptions) {}

  /** Started ahead, so that the first deliveries do not wait for the thread to boot. */
  onApplicationBootstrap(): void {
    if (this.options.worker.enabled && this.options.signing.schemes.includes('x-signature')) this.worker ??= this.startWorker();
  }

  /** Base64 DER signatures of `bodies`, in their order; rejects when the thread cannot make them. */
  sign(key: KeyObject, bodies: readonly string[]): Promise<string[]> {
    if (this.closed) return Promise.reject(new Error('The ECDSA signing thread has shut down'));
    const worker = this.worker ?? this.startWorker();
    const id = this.nextBatchId++;
    return new Promise<string[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, key, bodies });
    });
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    await worker?.terminate();
    this.failPending(new Error('The ECDSA signing thread has shut down'));
  }

  private startWorker(): Worker {
    const worker = new Worker(SIGNING_THREAD_SOURCE, { eval: true });
    // Never what keeps the process alive: signatures are only awaited while requests are.
    worker.unref();
    worker.on('message', (reply: SigningReply) => this.settle(reply));
    worker.on('error', (error) => this.stopped(worker, error));
    worker.on('exit', (code) => this.stopped(worker, new Error(`The ECDSA signing thread exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private settle({ id, signatures, error }: SigningReply): void {
    const batch = this.pending.get(id);
    if (!batch) return;
    this.pending.delete(id);
    if (signatures) batch.resolve(signatures);
    else batch.reject(new Error(error ?? 'ECDSA signing failed'));
  }

  /** A thread that failed or ended is replaced by the next batch; the batches it held fail. */
  private stopped(worker: Worker, error: Error): void {
    if (this.worker !== worker) return;
    this.worker = null;
    this.logger.warn(`ECDSA signing thread stopped; requests waiting for it are signed on their own: ${error.message}`);
    this.failPending(error);
  }

  private failPending(error: Error): void {
    const batches = [...this.pending.values()];
    this.pending.clear();
    batches.forEach((batch) => batch.reject(error));
  }
}
