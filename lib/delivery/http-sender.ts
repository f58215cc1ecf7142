import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { Agent, request, errors as undiciErrors } from 'undici';
import { ATTEMPT_ERROR_MAX_LENGTH, WebhookAttemptOutcome } from '../model/webhook-delivery-attempt.entity.js';
import { SsrfGuard, WebhookAddressRefusedError } from '../security/ssrf-guard.js';

export interface OutgoingRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
}

export interface AttemptResult {
  outcome: WebhookAttemptOutcome;
  statusCode: number | null;
  responseBody: string | null;
  error: string | null;
  startedAt: number;
  durationMs: number;
  /** The receiver's Retry-After, in ms from now, when it sent one. */
  retryAfterMs: number | null;
}

export interface HttpSenderOptions {
  timeoutMs: number;
  maxResponseBytes: number;
  connectionsPerOrigin: number;
  userAgent: string;
}

/**
 * POSTs webhook bodies with undici: one keep-alive pool per origin, redirects not followed, one
 * deadline for connect, headers and body, the answer read only up to `maxResponseBytes`.
 */
export class HttpSender {
  private readonly agent: Agent;

  constructor(
    private readonly options: HttpSenderOptions,
    private readonly guard: SsrfGuard,
  ) {
    this.agent = new Agent({
      connections: options.connectionsPerOrigin,
      keepAliveTimeout: 30_000,
      connect: { lookup: guard.lookup as never, timeout: options.timeoutMs },
    });
  }

  async send(outgoing: OutgoingRequest): Promise<AttemptResult> {
    const startedAt = Date.now();
    const finish = (result: Omit<AttemptResult, 'startedAt' | 'durationMs'>): AttemptResult => ({
      ...result,
      startedAt,
      durationMs: Date.now() - startedAt,
    });
    const deadline = new Deadline(this.options.timeoutMs);
    try {
      this.guard.checkLiteral(new URL(outgoing.url).hostname);
      const response = await request(outgoing.url, {
        method: 'POST',
        dispatcher: this.agent,
        body: outgoing.body,
        headers: { 'content-type': 'application/json', 'user-agent': this.options.userAgent, ...outgoing.headers },
        signal: deadline.signal,
        headersTimeout: this.options.timeoutMs,
        bodyTimeout: this.options.timeoutMs,
      });
      const responseBody = await readCapped(response.body, this.options.maxResponseBytes);
      const succeeded = response.statusCode >= 200 && response.statusCode < 300;
      return finish({
        outcome: succeeded ? WebhookAttemptOutcome.SUCCEEDED : WebhookAttemptOutcome.HTTP_ERROR,
        statusCode: response.statusCode,
        responseBody,
        error: succeeded ? null : describeStatus(response.statusCode, response.headers.location),
        retryAfterMs: parseRetryAfter(response.headers['retry-after']),
      });
    } catch (error) {
      if (deadline.passed) return finish(failure(WebhookAttemptOutcome.TIMEOUT, `timed out after ${this.options.timeoutMs} ms`));
      return finish(classifyFailure(error));
    } finally {
      deadline.clear();
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  /** Ends open connections at once (requests in flight fail). */
  destroy(): Promise<void> {
    return this.agent.destroy();
  }
}

/** The answer as text, read only up to `maxBytes`; the rest is not waited for. */
function readCapped(body: Readable, maxBytes: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => resolve(size === 0 ? null : Buffer.concat(chunks).toString('utf8'));
    body.on('data', (chunk: Buffer) => {
      if (size < maxBytes) chunks.push(chunk.subarray(0, maxBytes - size));
      size += chunk.length;
      if (size < maxBytes) return;
      body.removeAllListeners('data');
      body.destroy();
      done();
    });
    body.on('end', done);
    body.on('error', reject);
    body.on('close', done);
  });
}

/**
 * One deadline for connect, headers and body. undici takes an EventEmitter as its abort signal: an
 * AbortSignal (and AbortSignal.timeout even more) costs about as much CPU as the request itself.
 */
class Deadline {
  readonly signal = new EventEmitter();
  passed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(timeoutMs: number) {
    this.timer = setTimeout(() => {
      this.passed = true;
      this.signal.emit('abort');
    }, timeoutMs);
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

function describeStatus(status: number, location: string | string[] | undefined): string {
  if (status >= 300 && status < 400) return `redirect to ${String(location ?? '?').slice(0, 200)} not followed`;
  return `HTTP ${status}`;
}

function classifyFailure(error: unknown): Omit<AttemptResult, 'startedAt' | 'durationMs'> {
  const refused = findCause(error, (cause) => cause instanceof WebhookAddressRefusedError);
  if (refused) return failure(WebhookAttemptOutcome.REFUSED, refused.message);
  const timedOut = findCause(
    error,
    (cause) =>
      cause instanceof undiciErrors.HeadersTimeoutError ||
      cause instanceof undiciErrors.BodyTimeoutError ||
      cause instanceof undiciErrors.ConnectTimeoutError,
  );
  if (timedOut) return failure(WebhookAttemptOutcome.TIMEOUT, `timed out: ${timedOut.message}`);
  const cause = findCause(error, (candidate) => typeof (candidate as NodeJS.ErrnoException).code === 'string') as
    NodeJS.ErrnoException | undefined;
  const message = cause ? `${cause.code}: ${cause.message}` : ((error as Error | undefined)?.message ?? String(error));
  return failure(WebhookAttemptOutcome.NETWORK_ERROR, message);
}

function failure(outcome: WebhookAttemptOutcome, error: string): Omit<AttemptResult, 'startedAt' | 'durationMs'> {
  return { outcome, statusCode: null, responseBody: null, error: error.slice(0, ATTEMPT_ERROR_MAX_LENGTH), retryAfterMs: null };
}

/** Walks an error and its causes, the outermost first. */
function findCause(error: unknown, test: (candidate: Error) => boolean): Error | undefined {
  let current = error;
  for (let depth = 0; typeof current === 'object' && current !== null && depth < 5; depth++) {
    if (test(current as Error)) return current as Error;
    current = (current as Error).cause;
  }
  return undefined;
}

/** `Retry-After` as seconds or an HTTP date, in ms from now; `null` when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return null;
  if (/^\d{1,10}$/.test(text.trim())) return Number(text.trim()) * 1000;
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(text.trim())) return null;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}
