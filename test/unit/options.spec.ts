import { WebhookConfigurationError, WebhookModule } from '../../lib/index.js';
import { DEFAULT_RETRY_SCHEDULE_MS, MAX_DURATION_MS, resolveWebhookOptions } from '../../lib/module/webhook-options.validation.js';
import { WEBHOOK_MODULE_OPTIONS } from '../../lib/module/webhook.module-definition.js';

/** `values` with a hole at `at`, as `[1, , 3]` writes it. */
function withHole<T>(values: T[], at: number): T[] {
  const copy = [...values];
  delete copy[at];
  return copy;
}

describe('resolveWebhookOptions', () => {
  it('fills in the documented defaults', () => {
    expect(resolveWebhookOptions({})).toEqual({
      defaultSpaceId: 1,
      delivery: {
        concurrency: 64,
        perUrlConcurrency: 8,
        timeoutMs: 10_000,
        retrySchedule: DEFAULT_RETRY_SCHEDULE_MS,
        batchSize: 100,
        pollIntervalMs: 5_000,
        leaseMs: 60_000,
        maxResponseBytes: 4096,
        noRetryStatuses: [],
        deactivateAfter: { noSuccessForMs: 5 * 24 * 3600_000, abandonedDeliveries: 10 },
      },
      scheduler: { lifecycleIntervalMs: 10_000, purgeIntervalMs: 3600_000, retentionIntervalMs: 3600_000 },
      security: { allowPrivateNetworks: false, allowedHosts: [] },
      retention: { deletedListenerPurgeAfterMs: 30 * 24 * 3600_000, deliveryLogTtlMs: 30 * 24 * 3600_000 },
      signing: { keyEncryptionKey: null, schemes: ['x-signature', 'standard-webhooks'], rotationGraceMs: 86_400_000 },
      worker: { enabled: true },
    });
    expect(DEFAULT_RETRY_SCHEDULE_MS).toEqual([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
  });

  it('keeps given values and caps the per-URL concurrency at the global one', () => {
    const resolved = resolveWebhookOptions({
      defaultSpaceId: 9,
      delivery: { concurrency: 4, perUrlConcurrency: 16, retrySchedule: [10, 20] },
      security: { allowedHosts: ['Receiver.Internal'] },
      signing: { keyEncryptionKey: 'ab'.repeat(32), schemes: ['standard-webhooks'] },
      worker: { enabled: false },
    });
    expect(resolved).toMatchObject({
      defaultSpaceId: 9,
      delivery: { concurrency: 4, perUrlConcurrency: 4, retrySchedule: [10, 20] },
      security: { allowedHosts: ['receiver.internal'] },
      signing: { schemes: ['standard-webhooks'] },
      worker: { enabled: false },
    });
    expect(resolved.signing.keyEncryptionKey).toEqual(Buffer.alloc(32, 0xab));
    expect(resolveWebhookOptions({ security: { allowedHosts: ['[::1]', '0:0::1', 'FD00::A', '10.0.0.1'] } }).security.allowedHosts).toEqual(
      ['::1', '::1', 'fd00::a', '10.0.0.1'],
    );
    expect(
      resolveWebhookOptions({ signing: { keyEncryptionKey: Buffer.alloc(32, 1).toString('base64') } }).signing.keyEncryptionKey,
    ).toEqual(Buffer.alloc(32, 1));
  });

  it.each<[unknown, string]>([
    [null, 'options must be an object'],
    [{ delivery: [] }, 'option delivery must be an object'],
    [
      { delivery: { deactivateAfter: { never: true } } },
      'option delivery.deactivateAfter has unknown key "never"; allowed: noSuccessForMs, abandonedDeliveries',
    ],
    [{ delivery: { timeoutMs: '10s' } }, 'option delivery.timeoutMs must be an integer from 1 to 600000, got "10s"'],
    [{ security: { allowedHosts: ['http://x/'] } }, 'option security.allowedHosts[0] must be a host name'],
    [{ security: { allowedHosts: ['localhost:3000'] } }, 'option security.allowedHosts[0] must be a host name or an IP address alone'],
    [{ security: { allowedHosts: ['ok.example', '*.example.com'] } }, 'option security.allowedHosts[1] must be a host name or an IP'],
    [{ security: { allowedHosts: ['10.1.2'] } }, 'option security.allowedHosts[0] is written 10.1.0.2 in a URL; list it so'],
    [{ security: { allowedHosts: ['0x7f.1'] } }, 'option security.allowedHosts[0] is written 127.0.0.1 in a URL; list it so'],
    [{ security: { allowedHosts: ['fe80::1%eth0'] } }, 'option security.allowedHosts[0] names a network interface (%zone)'],
    [{ security: { allowedHosts: ['1.2.3.4.5'] } }, 'option security.allowedHosts[0] is no host a URL can hold'],
    [{ signing: { schemes: [] } }, 'option signing.schemes must be a non-empty list'],
    [{ signing: { keyEncryptionKey: 'zz'.repeat(32) } }, 'option signing.keyEncryptionKey must be 32 bytes'],
    [{ signing: { rotationGraceMs: -1 } }, 'option signing.rotationGraceMs must be an integer from 0 to 3153600000000, got -1'],
    [{ worker: { enabled: 1 } }, 'option worker.enabled must be true or false, got 1'],
    [
      { delivery: { retrySchedule: [1, MAX_DURATION_MS + 1] } },
      'option delivery.retrySchedule[1] must be an integer from 0 to 3153600000000',
    ],
    [
      { delivery: { retrySchedule: Array.from({ length: 101 }, () => 1) } },
      'option delivery.retrySchedule must be a list of at most 100 delays in ms',
    ],
    [
      { retention: { deletedListenerPurgeAfterMs: Number.MAX_SAFE_INTEGER } },
      'option retention.deletedListenerPurgeAfterMs must be an integer from 0 to 3153600000000, got 9007199254740991',
    ],
    [
      { retention: { deliveryLogTtlMs: 3_153_600_000_001 } },
      'option retention.deliveryLogTtlMs must be an integer from 0 to 3153600000000, got 3153600000001',
    ],
    [
      { delivery: { deactivateAfter: { noSuccessForMs: Number.MAX_SAFE_INTEGER } } },
      'option delivery.deactivateAfter.noSuccessForMs must be an integer from 0 to 3153600000000, got 9007199254740991',
    ],
    [
      { delivery: { timeoutMs: 30_000, leaseMs: 20_000 } },
      'option delivery.leaseMs must be at least delivery.timeoutMs + 2000 (32000), got 20000',
    ],
    [
      { delivery: { timeoutMs: 2_000, leaseMs: 3_999 } },
      'option delivery.leaseMs must be at least delivery.timeoutMs + 2000 (4000), got 3999',
    ],
    [
      { delivery: { retrySchedule: withHole([100, 100, 100], 1) } },
      'option delivery.retrySchedule[1] is missing: the list has a hole here',
    ],
    [{ delivery: { retrySchedule: new Array(2) } }, 'option delivery.retrySchedule[0] is missing: the list has a hole here'],
    [{ delivery: { noRetryStatuses: withHole([410, 404], 0) } }, 'option delivery.noRetryStatuses[0] is missing: the list has a hole here'],
    [
      { security: { allowedHosts: withHole(['a.example', 'b.example'], 1) } },
      'option security.allowedHosts[1] is missing: the list has a hole here',
    ],
    [{ signing: { schemes: new Array(1) } }, 'option signing.schemes[0] is missing: the list has a hole here'],
    [{ delivery: { retrySchedule: [5_000, undefined, 5_000] } }, 'option delivery.retrySchedule[1] is undefined'],
    [{ delivery: { noRetryStatuses: [undefined] } }, 'option delivery.noRetryStatuses[0] is undefined'],
  ])('refuses %j', (options, message) => {
    expect(() => resolveWebhookOptions(options as never)).toThrow(WebhookConfigurationError);
    expect(() => resolveWebhookOptions(options as never)).toThrow(message);
  });

  it('accepts durations up to 100 years, whose dates computed from now stay valid', () => {
    expect(MAX_DURATION_MS).toBe(100 * 365 * 24 * 3600_000);
    const { retention, delivery, signing } = resolveWebhookOptions({
      retention: { deletedListenerPurgeAfterMs: MAX_DURATION_MS, deliveryLogTtlMs: MAX_DURATION_MS },
      delivery: { deactivateAfter: { noSuccessForMs: MAX_DURATION_MS }, retrySchedule: [MAX_DURATION_MS] },
      signing: { rotationGraceMs: MAX_DURATION_MS },
    });
    const years = [
      new Date(Date.now() + retention.deletedListenerPurgeAfterMs),
      new Date(Date.now() - retention.deliveryLogTtlMs),
      new Date(Date.now() - delivery.deactivateAfter.noSuccessForMs),
      // The longest retry, with its jitter of up to 20 %.
      new Date(Date.now() + delivery.retrySchedule[0] * 1.2),
      new Date(Date.now() + signing.rotationGraceMs),
    ].map((date) => date.getUTCFullYear());
    for (const year of years) expect(year).toBeGreaterThan(1000);
    for (const year of years) expect(year).toBeLessThan(10_000);
  });

  it('never repeats the key encryption key in its message', () => {
    const secretLooking = 'c2VjcmV0LXNlY3JldC1zZWNyZXQ=';
    expect(() => resolveWebhookOptions({ signing: { keyEncryptionKey: secretLooking } })).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining(secretLooking) }),
    );
  });
});

describe('WebhookModule.forRoot', () => {
  it.each<[string, unknown]>([
    ['null', null],
    ['a string', 'webhook'],
    ['a list', []],
  ])('refuses %s as its options with WebhookConfigurationError as it is called', (_, options) => {
    expect(() => WebhookModule.forRoot(options as never)).toThrow(WebhookConfigurationError);
    expect(() => WebhookModule.forRoot(options as never)).toThrow('nestjs-webhook-listener: options must be an object');
  });

  it('takes no options as every default', () => {
    expect(WebhookModule.forRoot().module).toBe(WebhookModule);
  });

  it("reads options and settings given as a class's getters, as forRootAsync does", () => {
    class WebhookSettings {
      get worker() {
        return { enabled: false };
      }
      get delivery() {
        return { concurrency: 3 };
      }
      get isGlobal() {
        return false;
      }
    }
    const dynamicModule = WebhookModule.forRoot(new WebhookSettings());
    const options = dynamicModule.providers?.find(
      (provider) => typeof provider === 'object' && 'provide' in provider && provider.provide === WEBHOOK_MODULE_OPTIONS,
    );
    expect(options).toMatchObject({ useValue: { worker: { enabled: false }, delivery: { concurrency: 3 } } });
    expect(dynamicModule.global).toBe(false);
  });
});
