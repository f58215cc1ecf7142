import { WebhookAttemptOutcome } from '../model/webhook-delivery-attempt.entity.js';
import type { AttemptResult } from './http-sender.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const JITTER = 0.2;

export type DeliveryDecision =
  { kind: 'succeeded' } | { kind: 'retry'; delayMs: number } | { kind: 'abandon'; reason: string; deactivateListener: boolean };

export interface RetryPolicyOptions {
  retrySchedule: readonly number[];
  noRetryStatuses: readonly number[];
}

/** What follows attempt number `attempt` (1-based) of a delivery. */
export function decideAfterAttempt(
  result: AttemptResult,
  attempt: number,
  options: RetryPolicyOptions,
  random: () => number = Math.random,
): DeliveryDecision {
  if (result.outcome === WebhookAttemptOutcome.SUCCEEDED) return { kind: 'succeeded' };
  if (result.outcome === WebhookAttemptOutcome.REFUSED) return { kind: 'abandon', reason: 'address refused', deactivateListener: false };
  if (result.statusCode === 410) return { kind: 'abandon', reason: 'receiver answered 410 Gone', deactivateListener: true };
  if (result.statusCode !== null && options.noRetryStatuses.includes(result.statusCode)) {
    return { kind: 'abandon', reason: `status ${result.statusCode} is never retried`, deactivateListener: false };
  }
  if (attempt > options.retrySchedule.length)
    return { kind: 'abandon', reason: `no retry left after ${attempt} attempts`, deactivateListener: false };
  const scheduled = options.retrySchedule[attempt - 1] * (1 + (random() * 2 - 1) * JITTER);
  // Retry-After can only lengthen the scheduled wait, up to twice it and up to a day; it never shortens it.
  const delayMs = result.retryAfterMs === null ? scheduled : Math.max(scheduled, Math.min(result.retryAfterMs, 2 * scheduled, DAY_MS));
  return { kind: 'retry', delayMs: Math.round(delayMs) };
}
