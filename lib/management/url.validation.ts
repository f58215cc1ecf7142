import { WebhookValidationError } from '../errors/webhook.errors.js';
import { URL_MAX_LENGTH, URL_MIN_LENGTH } from '../model/webhook-url.entity.js';
import type { SsrfGuard } from '../security/ssrf-guard.js';
import { requireString } from '../validation/input.validation.js';

/** An absolute http(s) address with no credentials, no fragment and no white space. */
export function requireWebhookAddress(value: unknown, field: string, guard: SsrfGuard): string {
  const address = requireString(value, field, URL_MIN_LENGTH, URL_MAX_LENGTH);
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(address))
    throw new WebhookValidationError(field, 'must not contain white space or control characters');
  let parsed: URL;
  try {
    parsed = new URL(address);
  } catch {
    throw new WebhookValidationError(field, 'must be an absolute URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new WebhookValidationError(field, 'must use http or https');
  if (parsed.username || parsed.password || /^[a-z]+:\/\/[^/?#\\]*@/i.test(address)) {
    throw new WebhookValidationError(field, 'must not contain a user name or password');
  }
  if (address.includes('#')) throw new WebhookValidationError(field, 'must not contain a fragment (#…)');
  if (!parsed.hostname) throw new WebhookValidationError(field, 'must name a host');
  try {
    guard.checkLiteral(parsed.hostname);
  } catch (error) {
    throw new WebhookValidationError(field, (error as Error).message);
  }
  return address;
}
