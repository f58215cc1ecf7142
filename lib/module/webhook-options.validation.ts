import { WebhookConfigurationError } from '../errors/webhook.errors.js';
import { MAX_TIMER_DELAY_MS } from '../scheduling/scheduler.js';
import { comparableHost, unmatchableHostReason } from '../security/ssrf-guard.js';
import { firstHole, HOLE_REASON } from '../validation/input.validation.js';
import type { ResolvedWebhookOptions, WebhookModuleOptions, WebhookSignatureScheme } from './webhook-options.interface.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/**
 * Longest time span for the options that are added to or taken from the current time (100 years):
 * the result must stay a valid Date and fit the databases' datetime columns, which end at year 9999
 * on MySQL. The others are timer delays, already at most MAX_TIMER_DELAY_MS.
 */
export const MAX_DURATION_MS = 100 * 365 * DAY;

export const DEFAULT_RETRY_SCHEDULE_MS = [5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR];
export const SIGNATURE_SCHEMES: readonly WebhookSignatureScheme[] = ['x-signature', 'standard-webhooks'];

type Section = Record<string, unknown>;

const OPTION_SECTIONS = ['defaultSpaceId', 'delivery', 'scheduler', 'security', 'retention', 'signing', 'worker'] as const;

/** Checks the options a host passed and fills in the defaults; any mistake stops the boot. */
export function resolveWebhookOptions(options: WebhookModuleOptions | undefined): ResolvedWebhookOptions {
  const root = section(options, 'options', [...OPTION_SECTIONS]);
  const delivery = section(root.delivery, 'delivery', [
    'concurrency',
    'perUrlConcurrency',
    'timeoutMs',
    'retrySchedule',
    'batchSize',
    'pollIntervalMs',
    'leaseMs',
    'maxResponseBytes',
    'noRetryStatuses',
    'deactivateAfter',
  ]);
  const deactivateAfter = section(delivery.deactivateAfter, 'delivery.deactivateAfter', ['noSuccessForMs', 'abandonedDeliveries']);
  const scheduler = section(root.scheduler, 'scheduler', ['lifecycleIntervalMs', 'purgeIntervalMs', 'retentionIntervalMs']);
  const security = section(root.security, 'security', ['allowPrivateNetworks', 'allowedHosts']);
  const retention = section(root.retention, 'retention', ['deletedListenerPurgeAfterMs', 'deliveryLogTtlMs']);
  const signing = section(root.signing, 'signing', ['keyEncryptionKey', 'schemes', 'rotationGraceMs']);
  const worker = section(root.worker, 'worker', ['enabled']);

  const timeoutMs = integer(delivery.timeoutMs, 'delivery.timeoutMs', 10 * SECOND, 1, 10 * MINUTE);
  const leaseMs = integer(delivery.leaseMs, 'delivery.leaseMs', Math.max(MINUTE, 2 * timeoutMs), 1000, MAX_TIMER_DELAY_MS);
  // A request starts only with timeoutMs + 1 s of its lease left, so that the lease outlasts the attempt
  // and the writing of its result; a lease with no time beyond that would give back every delivery
  // that waited at all for its turn, and send none.
  if (leaseMs < timeoutMs + 2 * SECOND)
    fail('delivery.leaseMs', `must be at least delivery.timeoutMs + 2000 (${timeoutMs + 2 * SECOND}), got ${leaseMs}`);
  const perUrlConcurrency = integer(delivery.perUrlConcurrency, 'delivery.perUrlConcurrency', 8, 1, 10_000);
  const concurrency = integer(delivery.concurrency, 'delivery.concurrency', 64, 1, 10_000);
  return {
    defaultSpaceId: integer(root.defaultSpaceId, 'defaultSpaceId', 1, 1, 2_147_483_647),
    delivery: {
      concurrency,
      perUrlConcurrency: Math.min(perUrlConcurrency, concurrency),
      timeoutMs,
      retrySchedule: delayList(delivery.retrySchedule, 'delivery.retrySchedule', DEFAULT_RETRY_SCHEDULE_MS),
      batchSize: integer(delivery.batchSize, 'delivery.batchSize', 100, 1, 10_000),
      pollIntervalMs: integer(delivery.pollIntervalMs, 'delivery.pollIntervalMs', 5 * SECOND, 10, MAX_TIMER_DELAY_MS),
      leaseMs,
      maxResponseBytes: integer(delivery.maxResponseBytes, 'delivery.maxResponseBytes', 4096, 0, 1024 * 1024),
      noRetryStatuses: statusList(delivery.noRetryStatuses, 'delivery.noRetryStatuses'),
      deactivateAfter: {
        noSuccessForMs: integer(deactivateAfter.noSuccessForMs, 'delivery.deactivateAfter.noSuccessForMs', 5 * DAY, 0, MAX_DURATION_MS),
        abandonedDeliveries: integer(deactivateAfter.abandonedDeliveries, 'delivery.deactivateAfter.abandonedDeliveries', 10, 1, 1_000_000),
      },
    },
    scheduler: {
      lifecycleIntervalMs: integer(scheduler.lifecycleIntervalMs, 'scheduler.lifecycleIntervalMs', 10 * SECOND, 10, MAX_TIMER_DELAY_MS),
      purgeIntervalMs: integer(scheduler.purgeIntervalMs, 'scheduler.purgeIntervalMs', HOUR, 10, MAX_TIMER_DELAY_MS),
      retentionIntervalMs: integer(scheduler.retentionIntervalMs, 'scheduler.retentionIntervalMs', HOUR, 10, MAX_TIMER_DELAY_MS),
    },
    security: {
      allowPrivateNetworks: boolean(security.allowPrivateNetworks, 'security.allowPrivateNetworks', false),
      allowedHosts: hostList(security.allowedHosts, 'security.allowedHosts'),
    },
    retention: {
      deletedListenerPurgeAfterMs: integer(
        retention.deletedListenerPurgeAfterMs,
        'retention.deletedListenerPurgeAfterMs',
        30 * DAY,
        0,
        MAX_DURATION_MS,
      ),
      deliveryLogTtlMs: integer(retention.deliveryLogTtlMs, 'retention.deliveryLogTtlMs', 30 * DAY, 0, MAX_DURATION_MS),
    },
    signing: {
      keyEncryptionKey: encryptionKey(signing.keyEncryptionKey),
      schemes: schemeList(signing.schemes),
      rotationGraceMs: integer(signing.rotationGraceMs, 'signing.rotationGraceMs', DAY, 0, MAX_DURATION_MS),
    },
    worker: { enabled: boolean(worker.enabled, 'worker.enabled', true) },
  };
}

function fail(path: string, reason: string): never {
  throw new WebhookConfigurationError(path === 'options' ? 'options' : `option ${path}`, reason);
}

/**
 * What `forRoot()` hands to Nest, which copies only the own keys of its options (it would fail on
 * `null` with a TypeError, and make a string into an object of its characters): the options and
 * settings given as getters or inherited, by a class's instance say, are read by name, as
 * `forRootAsync()` reads what its factory returns.
 */
export function plainModuleOptions<T extends object>(options: T, settings: readonly string[]): T {
  requireObject(options, 'options');
  const plain: Section = { ...options };
  for (const key of [...OPTION_SECTIONS, ...settings]) {
    const value = (options as Section)[key];
    if (value !== undefined) plain[key] = value;
  }
  return plain as T;
}

function requireObject(value: unknown, path: string): asserts value is Section {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(path, 'must be an object');
}

function section(value: unknown, path: string, known: string[]): Section {
  if (value === undefined) return {};
  requireObject(value, path);
  const unknown = Object.keys(value).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    fail(
      path,
      `has unknown ${unknown.length === 1 ? 'key' : 'keys'} ${unknown.map((k) => `"${k}"`).join(', ')}; allowed: ${known.join(', ')}`,
    );
  }
  return value as Section;
}

function integer(value: unknown, path: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(path, `must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

function boolean(value: unknown, path: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') fail(path, `must be true or false, got ${describe(value)}`);
  return value;
}

/** A list without holes: `map()` skips a hole (`[100, , 100]`, `new Array(3)`) and would leave it in the result. */
function list(value: unknown, path: string, reason: string, maxLength = Number.POSITIVE_INFINITY): unknown[] {
  if (!Array.isArray(value) || value.length > maxLength) fail(path, reason);
  const hole = firstHole(value);
  if (hole >= 0) fail(`${path}[${hole}]`, HOLE_REASON);
  // An option left undefined takes its default; an item has none.
  const unset = value.indexOf(undefined);
  if (unset >= 0) fail(`${path}[${unset}]`, 'is undefined');
  return value;
}

function delayList(value: unknown, path: string, fallback: number[]): number[] {
  if (value === undefined) return [...fallback];
  const delays = list(value, path, 'must be a list of at most 100 delays in ms', 100);
  return delays.map((delay, index) => integer(delay, `${path}[${index}]`, 0, 0, MAX_DURATION_MS));
}

function statusList(value: unknown, path: string): number[] {
  if (value === undefined) return [];
  return list(value, path, 'must be a list of HTTP statuses').map((status, index) => integer(status, `${path}[${index}]`, 0, 100, 599));
}

function hostList(value: unknown, path: string): string[] {
  if (value === undefined) return [];
  return list(value, path, 'must be a list of host names').map((host, index) => {
    if (typeof host !== 'string' || host.length === 0) fail(`${path}[${index}]`, `must be a host name, got ${describe(host)}`);
    const unmatchable = unmatchableHostReason(host);
    if (unmatchable) fail(`${path}[${index}]`, `${unmatchable}, got ${describe(host)}`);
    return comparableHost(host);
  });
}

function schemeList(value: unknown): WebhookSignatureScheme[] {
  if (value === undefined) return [...SIGNATURE_SCHEMES];
  const allowed = `allowed: ${SIGNATURE_SCHEMES.map((s) => `"${s}"`).join(', ')}`;
  const reason = `must be a non-empty list; ${allowed}`;
  const schemes = list(value, 'signing.schemes', reason) as WebhookSignatureScheme[];
  if (schemes.length === 0) fail('signing.schemes', reason);
  for (const scheme of schemes) {
    if (!SIGNATURE_SCHEMES.includes(scheme)) fail('signing.schemes', `has ${describe(scheme)}; ${allowed}`);
  }
  return [...new Set(schemes)];
}

function encryptionKey(value: unknown): Buffer | null {
  if (value === undefined) return null;
  const reason = 'must be 32 bytes written as base64 or as 64 hex characters';
  if (typeof value !== 'string') fail('signing.keyEncryptionKey', reason);
  const key = /^[0-9a-fA-F]{64}$/.test(value) ? Buffer.from(value, 'hex') : decodeBase64(value);
  if (key?.length !== 32) fail('signing.keyEncryptionKey', reason);
  return key;
}

function decodeBase64(value: string): Buffer | null {
  return /^[A-Za-z0-9+/_-]+={0,2}$/.test(value) ? Buffer.from(value, 'base64') : null;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `"${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return Array.isArray(value) ? 'a list' : typeof value;
}
