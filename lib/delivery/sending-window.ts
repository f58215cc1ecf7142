import { setNewest } from '../caching/bounded-map.js';
import { WebhookAttemptOutcome } from '../model/webhook-delivery-attempt.entity.js';

/** URLs whose grown window is remembered at most; a forgotten URL starts again at one request. */
const MAX_REMEMBERED_URLS = 10_000;

/**
 * How many requests each URL may have in flight, up to the per-URL cap: one until the URL has
 * answered, one more with every answer, and one again after a timeout. A receiver that answers
 * within a millisecond reaches the cap after a few round trips; receivers that never answer hold
 * one slot each, not their full share, until their requests time out.
 */
export class SendingWindows {
  /** Only windows above one: a URL not in here may have one request in flight. */
  private readonly grown = new Map<number, number>();

  constructor(private readonly cap: number) {}

  of(urlId: number): number {
    return Math.min(this.cap, this.grown.get(urlId) ?? 1);
  }

  afterAttempt(urlId: number, outcome: WebhookAttemptOutcome): void {
    if (outcome === WebhookAttemptOutcome.TIMEOUT) {
      this.grown.delete(urlId);
      return;
    }
    // A network error or a refused address says nothing about how many requests the receiver can take.
    const answered = outcome === WebhookAttemptOutcome.SUCCEEDED || outcome === WebhookAttemptOutcome.HTTP_ERROR;
    const window = this.of(urlId);
    if (!answered || window >= this.cap) return;
    // Set anew, so that the URLs whose windows grew last are forgotten last.
    setNewest(this.grown, urlId, window + 1, MAX_REMEMBERED_URLS);
  }
}
