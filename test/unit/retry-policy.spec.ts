import { parseRetryAfter } from '../../lib/delivery/http-sender.js';
import { buildPayload, formatWebhookTimestamp } from '../../lib/delivery/payload.js';
import { decideAfterAttempt } from '../../lib/delivery/retry-policy.js';
import { WebhookAttemptOutcome } from '../../lib/model/webhook-delivery-attempt.entity.js';
import { DEFAULT_RETRY_SCHEDULE_MS } from '../../lib/module/webhook-options.validation.js';

const result = (statusCode: number | null, outcome = WebhookAttemptOutcome.HTTP_ERROR, retryAfterMs: number | null = null) => ({
  outcome,
  statusCode,
  responseBody: null,
  error: null,
  startedAt: 0,
  durationMs: 1,
  retryAfterMs,
});
const policy = { retrySchedule: DEFAULT_RETRY_SCHEDULE_MS, noRetryStatuses: [400] };

describe('decideAfterAttempt', () => {
  it('retries on the schedule with at most ±20 % jitter', () => {
    for (const [index, scheduled] of DEFAULT_RETRY_SCHEDULE_MS.entries()) {
      expect(decideAfterAttempt(result(500), index + 1, policy, () => 0)).toEqual({ kind: 'retry', delayMs: Math.round(scheduled * 0.8) });
      expect(decideAfterAttempt(result(500), index + 1, policy, () => 1)).toEqual({ kind: 'retry', delayMs: Math.round(scheduled * 1.2) });
      expect(decideAfterAttempt(result(null, WebhookAttemptOutcome.TIMEOUT), index + 1, policy, () => 0.5)).toEqual({
        kind: 'retry',
        delayMs: scheduled,
      });
    }
  });

  it('abandons after the last scheduled retry', () => {
    expect(decideAfterAttempt(result(500), DEFAULT_RETRY_SCHEDULE_MS.length + 1, policy)).toMatchObject({
      kind: 'abandon',
      deactivateListener: false,
    });
  });

  it('honours Retry-After between the scheduled delay and twice it, and never beyond a day', () => {
    const first = DEFAULT_RETRY_SCHEDULE_MS[0];
    expect(decideAfterAttempt(result(429, undefined, 1), 1, policy, () => 0.5)).toEqual({ kind: 'retry', delayMs: first });
    expect(decideAfterAttempt(result(429, undefined, first * 1.5), 1, policy, () => 0.5)).toEqual({ kind: 'retry', delayMs: first * 1.5 });
    expect(decideAfterAttempt(result(429, undefined, first * 10), 1, policy, () => 0.5)).toEqual({ kind: 'retry', delayMs: first * 2 });
    const long = { retrySchedule: [20 * 3600_000], noRetryStatuses: [] };
    expect(decideAfterAttempt(result(503, undefined, 48 * 3600_000), 1, long, () => 0.5)).toEqual({
      kind: 'retry',
      delayMs: 24 * 3600_000,
    });
    const longerThanADay = { retrySchedule: [2 * 24 * 3600_000], noRetryStatuses: [] };
    expect(decideAfterAttempt(result(429, undefined, 3600_000), 1, longerThanADay, () => 0.5)).toEqual({
      kind: 'retry',
      delayMs: 2 * 24 * 3600_000,
    });
  });

  it('succeeds on 2xx, deactivates on 410, gives up at once on refused addresses and configured statuses', () => {
    expect(decideAfterAttempt(result(204, WebhookAttemptOutcome.SUCCEEDED), 1, policy)).toEqual({ kind: 'succeeded' });
    expect(decideAfterAttempt(result(410), 1, policy)).toMatchObject({ kind: 'abandon', deactivateListener: true });
    expect(decideAfterAttempt(result(null, WebhookAttemptOutcome.REFUSED), 1, policy)).toMatchObject({ kind: 'abandon' });
    expect(decideAfterAttempt(result(400), 1, policy)).toMatchObject({ kind: 'abandon' });
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-27T12:00:00Z');
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(['7'], now)).toBe(7_000);
    expect(parseRetryAfter('Fri, 27 Nov 2026 12:01:00 GMT', now)).toBe(60_000);
    expect(parseRetryAfter('Fri, 27 Nov 2026 11:00:00 GMT', now)).toBe(0);
  });
  it('reads the two older forms of an HTTP date as GMT too', () => {
    expect(parseRetryAfter('Friday, 27-Nov-26 12:01:00 GMT', now)).toBe(60_000);
    expect(parseRetryAfter('Fri Nov 27 12:02:00 2026', now)).toBe(120_000);
    expect(parseRetryAfter('Tue Dec  1 12:00:00 2026', now)).toBe(4 * 86_400_000);
    // A two-digit year more than 50 years ahead is in the past.
    expect(parseRetryAfter('Monday, 27-Nov-95 12:01:00 GMT', now)).toBe(0);
  });
  it.each([
    undefined,
    '',
    'soon',
    '-5',
    'Fri, 31 Nov 2026 12:00:00 GMT',
    'Fri, 27 Nov 2026 25:00:00 GMT',
    'Fri Xyz 27 12:02:00 2026',
    '2026-11-27T12:01:00Z',
  ])('ignores %p', (value) => {
    expect(parseRetryAfter(value, now)).toBeNull();
  });
});

describe('payload', () => {
  it('formats the timestamp like wallee, in UTC without milliseconds', () => {
    expect(formatWebhookTimestamp(new Date('2023-12-19T13:43:35.987Z'))).toBe('2023-12-19T13:43:35+0000');
  });

  it('formats each timestamp of its own, whatever came before in the same or another second', () => {
    const times = [
      '2023-12-19T13:43:35.001Z',
      '2023-12-19T13:43:35.999Z',
      '2023-12-19T13:43:36.000Z',
      '2023-12-19T13:43:35.500Z',
      '1969-12-31T23:59:59.500Z',
    ];
    expect(times.map((time) => formatWebhookTimestamp(new Date(time)))).toEqual([
      '2023-12-19T13:43:35+0000',
      '2023-12-19T13:43:35+0000',
      '2023-12-19T13:43:36+0000',
      '2023-12-19T13:43:35+0000',
      '1969-12-31T23:59:59+0000',
    ]);
  });

  it('sends numeric ids as numbers only when the key is numeric and safe', () => {
    const source = {
      eventId: 1,
      listenerEntityId: 2,
      entityName: 'Order',
      spaceId: 3,
      listenerId: 4,
      occurredAt: 0,
      state: 'PAID',
      includeState: true,
    };
    expect(JSON.parse(buildPayload({ ...source, entityId: '42', numericEntityId: true })).entityId).toBe(42);
    expect(JSON.parse(buildPayload({ ...source, entityId: '9007199254740993', numericEntityId: true })).entityId).toBe('9007199254740993');
    expect(JSON.parse(buildPayload({ ...source, entityId: '42', numericEntityId: false })).entityId).toBe('42');
    expect(JSON.parse(buildPayload({ ...source, entityId: '042', numericEntityId: true })).entityId).toBe('042');
    expect(JSON.parse(buildPayload({ ...source, entityId: '42', numericEntityId: true, includeState: false }))).not.toHaveProperty('state');
  });
});
