import { createPrivateKey, sign } from 'node:crypto';
import { runInNewContext } from 'node:vm';
import { Webhook } from 'standardwebhooks';
import { generateIdentityKeyMaterial } from '../../lib/signing/key-material.js';
import { formatXSignature, standardWebhooksSignature, decodeStandardWebhooksSecret } from '../../lib/signing/signature-format.js';
import { WebhookError } from '../../lib/errors/webhook.errors.js';
import {
  verifyStandardWebhook,
  verifyXSignature,
  WebhookVerificationKeyError,
  WebhookVerificationOptionError,
  type StandardWebhookVerifyOptions,
} from '../../lib/verify/index.js';

const body = JSON.stringify({
  eventId: 1,
  entityId: '42',
  listenerEntityId: 1001,
  listenerEntityTechnicalName: 'Order',
  spaceId: 7,
  webhookListenerId: 3,
  timestamp: '2023-12-19T13:43:35+0000',
  state: 'SHIPPED',
});

describe('verifyXSignature', () => {
  const keys = generateIdentityKeyMaterial();
  const other = generateIdentityKeyMaterial();
  const privateKey = createPrivateKey({ key: Buffer.from(keys.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
  const signatureOf = (content: string) => sign('sha256', Buffer.from(content), { key: privateKey, dsaEncoding: 'der' }).toString('base64');
  const header = formatXSignature(keys.keyId, signatureOf(body));

  it('accepts a signature over the raw body, as string, Buffer or Uint8Array', () => {
    expect(header).toMatch(/^algorithm=SHA256withECDSA, keyId=[0-9a-f-]{36}, signature=[A-Za-z0-9+/]+=*$/);
    expect(verifyXSignature(header, body, keys.publicKey)).toBe(true);
    expect(verifyXSignature(header, Buffer.from(body), keys.publicKey)).toBe(true);
    expect(verifyXSignature(header, new Uint8Array(Buffer.from(body)), keys.publicKey)).toBe(true);
  });

  it('rejects a changed body, another key, or a changed signature', () => {
    expect(verifyXSignature(header, body.replace('SHIPPED', 'PENDING'), keys.publicKey)).toBe(false);
    expect(verifyXSignature(header, body, other.publicKey)).toBe(false);
    expect(verifyXSignature(formatXSignature(keys.keyId, signatureOf(body + ' ')), body, keys.publicKey)).toBe(false);
    expect(verifyXSignature(header.replace('SHA256withECDSA', 'SHA1withECDSA'), body, keys.publicKey)).toBe(false);
  });

  it.each<unknown>(
    [
      undefined,
      null,
      42,
      '',
      'garbage',
      'algorithm=SHA256withECDSA',
      'signature=!!!, keyId=x, algorithm=SHA256withECDSA',
      'a=b, a=c',
      '=,=,=',
      'x'.repeat(100_000),
    ].map((value) => [String(value).slice(0, 40), value]),
  )('answers false to the header %s', (_title, value) => {
    expect(verifyXSignature(value, body, keys.publicKey)).toBe(false);
  });

  it('answers false to a body that is no string or bytes', () => {
    expect(verifyXSignature(header, { body } as never, keys.publicKey)).toBe(false);
  });

  it('answers false to a signature spelled other than in padded base64', () => {
    // A DER signature is 70 to 72 bytes, and ECDSA signs anew each time: take one whose base64 is padded.
    const signature = Array.from({ length: 100 }, () => signatureOf(body)).find((candidate) => candidate.endsWith('='))!;
    expect(verifyXSignature(formatXSignature(keys.keyId, signature), body, keys.publicKey)).toBe(true);
    for (const spelling of [signature.replace(/=+$/, ''), `${signature}x`, `${signature.slice(0, 10)}!*~${signature.slice(10)}`]) {
      expect(verifyXSignature(formatXSignature(keys.keyId, spelling), body, keys.publicKey)).toBe(false);
    }
  });

  it('takes a body from another realm, and answers false to one whose buffer was transferred', () => {
    expect(verifyXSignature(header, runInNewContext('new Uint8Array(bytes)', { bytes: [...Buffer.from(body)] }), keys.publicKey)).toBe(
      true,
    );
    expect(verifyXSignature(header, detached(body), keys.publicKey)).toBe(false);
  });

  it('throws a typed error for a public key that is none', () => {
    for (const key of ['', 'bm90IGEga2V5', undefined, keys.privateKey]) {
      expect(() => verifyXSignature(header, body, key as string)).toThrow(WebhookVerificationKeyError);
    }
    // Like every error the module throws on purpose.
    const thrown = (() => {
      try {
        return verifyXSignature(header, body, '');
      } catch (error) {
        return error;
      }
    })();
    expect(thrown).toBeInstanceOf(WebhookError);
    expect(thrown).toMatchObject({ name: 'WebhookVerificationKeyError', code: 'WEBHOOK_VERIFICATION_KEY' });
  });
});

describe('verifyStandardWebhook', () => {
  const secret = generateIdentityKeyMaterial().secret;
  const now = new Date('2026-11-27T12:00:00Z');
  const timestamp = Math.floor(now.getTime() / 1000);
  const headersFor = (signature: string, ts = timestamp, id = 'msg_1') => ({
    'webhook-id': id,
    'webhook-timestamp': String(ts),
    'webhook-signature': signature,
  });
  const ours = `v1,${standardWebhooksSignature(decodeStandardWebhooksSecret(secret)!, 'msg_1', timestamp, body)}`;

  it('agrees with the standardwebhooks package both ways', () => {
    const theirs = new Webhook(secret).sign('msg_1', now, body);
    expect(ours).toBe(theirs);
    expect(verifyStandardWebhook(headersFor(theirs), body, secret, { now })).toBe(true);
    const current = Math.floor(Date.now() / 1000);
    const oursNow = `v1,${standardWebhooksSignature(decodeStandardWebhooksSecret(secret)!, 'msg_1', current, body)}`;
    expect(() => new Webhook(secret).verify(body, headersFor(oursNow, current))).not.toThrow();
    expect(() => new Webhook(secret).verify(body + ' ', headersFor(oursNow, current))).toThrow();
  });

  it('accepts any matching v1 signature among several, and fetch Headers', () => {
    const otherSecret = generateIdentityKeyMaterial().secret;
    const old = new Webhook(otherSecret).sign('msg_1', now, body);
    expect(verifyStandardWebhook(headersFor(`${old} ${ours}`), body, secret, { now })).toBe(true);
    expect(verifyStandardWebhook(new Headers(headersFor(ours)), body, secret, { now })).toBe(true);
    expect(
      verifyStandardWebhook({ 'Webhook-Id': 'msg_1', 'Webhook-Timestamp': String(timestamp), 'Webhook-Signature': ours }, body, secret, {
        now,
      }),
    ).toBe(true);
  });

  it('rejects a changed body, id, timestamp, secret or signature', () => {
    expect(verifyStandardWebhook(headersFor(ours), body + ' ', secret, { now })).toBe(false);
    expect(verifyStandardWebhook(headersFor(ours, timestamp, 'msg_2'), body, secret, { now })).toBe(false);
    expect(verifyStandardWebhook(headersFor(ours, timestamp + 1), body, secret, { now })).toBe(false);
    expect(verifyStandardWebhook(headersFor(ours), body, generateIdentityKeyMaterial().secret, { now })).toBe(false);
    expect(verifyStandardWebhook(headersFor(ours.replace(/.$/, ours.endsWith('A') ? 'B' : 'A')), body, secret, { now })).toBe(false);
    expect(verifyStandardWebhook(headersFor(ours.replace('v1,', 'v2,')), body, secret, { now })).toBe(false);
  });

  it('rejects a signature spelled otherwise than the standardwebhooks package spells it, as that package does', () => {
    const respellings: ((signature: string) => string)[] = [
      (signature) => `${signature}garbage`,
      (signature) => `${signature.slice(0, 10)}!*~${signature.slice(10)}`,
      (signature) => signature.replace(/=+$/, ''),
    ];
    const current = Math.floor(Date.now() / 1000);
    const signatureAt = (ts: number) => standardWebhooksSignature(decodeStandardWebhooksSecret(secret)!, 'msg_1', ts, body);
    for (const respell of respellings) {
      expect(verifyStandardWebhook(headersFor(`v1,${respell(signatureAt(timestamp))}`), body, secret, { now })).toBe(false);
      expect(() => new Webhook(secret).verify(body, headersFor(`v1,${respell(signatureAt(current))}`, current))).toThrow();
    }
    // Which standardwebhooks 1.3 refuses too (1.1 ignores what follows a second comma).
    expect(verifyStandardWebhook(headersFor(`${ours},extra`), body, secret, { now })).toBe(false);
  });

  it('takes a Date without its prototype as the time, and answers false to headers whose get() gives no text', () => {
    const bare = Object.setPrototypeOf(new Date(now.getTime()), null) as Date;
    expect(verifyStandardWebhook(headersFor(ours), body, secret, { now: bare })).toBe(true);
    const listed = new Map(Object.entries(headersFor(ours)).map(([name, value]) => [name, [value]]));
    expect(verifyStandardWebhook(listed as never, body, secret, { now })).toBe(false);
  });

  it('takes a body and a time from another realm, and answers false to a body whose buffer was transferred', () => {
    const foreignBody = runInNewContext('new Uint8Array(bytes)', { bytes: [...Buffer.from(body)] });
    const foreignNow = runInNewContext(`new Date(${now.getTime()})`);
    expect(verifyStandardWebhook(headersFor(ours), foreignBody, secret, { now: foreignNow })).toBe(true);
    expect(verifyStandardWebhook(headersFor(ours), detached(body), secret, { now })).toBe(false);
  });

  it('rejects a timestamp outside the tolerance', () => {
    const later = new Date(now.getTime() + 301_000);
    expect(verifyStandardWebhook(headersFor(ours), body, secret, { now: later })).toBe(false);
    expect(verifyStandardWebhook(headersFor(ours), body, secret, { now: later, toleranceSec: 400 })).toBe(true);
  });

  it.each<unknown>([
    {},
    null,
    'headers',
    { 'webhook-id': ['a', 'b'], 'webhook-timestamp': '1', 'webhook-signature': 'v1,x' },
    { 'webhook-id': 'a', 'webhook-timestamp': 'soon', 'webhook-signature': 'v1,x' },
    { 'webhook-id': 'a', 'webhook-timestamp': String(timestamp), 'webhook-signature': ',,, v1 ' },
  ])('answers false to the headers %p', (headers) => {
    expect(verifyStandardWebhook(headers as never, body, secret, { now })).toBe(false);
  });

  it('refuses a tolerance that would turn the timestamp check off, instead of accepting a 10-day-old request', () => {
    const tenDaysLater = new Date(now.getTime() + 10 * 24 * 3600_000);
    const unsetSetting = Number(undefined);
    const thrown = (() => {
      try {
        return verifyStandardWebhook(headersFor(ours), body, secret, { now: tenDaysLater, toleranceSec: unsetSetting });
      } catch (error) {
        return error;
      }
    })();
    expect(thrown).toBeInstanceOf(WebhookVerificationOptionError);
    expect(thrown).toBeInstanceOf(WebhookError);
    expect(thrown).toMatchObject({
      name: 'WebhookVerificationOptionError',
      code: 'WEBHOOK_VERIFICATION_OPTION',
      option: 'toleranceSec',
      message: 'toleranceSec must be a finite number of seconds, 0 or more, got NaN',
    });
  });

  it.each<[string, StandardWebhookVerifyOptions, string]>([
    ['toleranceSec NaN', { toleranceSec: NaN }, 'toleranceSec'],
    ['toleranceSec -1', { toleranceSec: -1 }, 'toleranceSec'],
    ['toleranceSec Infinity', { toleranceSec: Infinity }, 'toleranceSec'],
    ['toleranceSec "300"', { toleranceSec: '300' as never }, 'toleranceSec'],
    ['toleranceSec null', { toleranceSec: null as never }, 'toleranceSec'],
    ['now an invalid Date', { now: new Date(NaN) }, 'now'],
    ['now a number', { now: Date.now() as never }, 'now'],
  ])('throws a typed error for the option %s, also for a request that verifies', (_title, options, option) => {
    expect(() => verifyStandardWebhook(headersFor(ours), body, secret, { now, ...options })).toThrow(
      expect.objectContaining({ constructor: WebhookVerificationOptionError, option }),
    );
  });

  it('accepts a tolerance of 0 or a fraction of a second', () => {
    expect(verifyStandardWebhook(headersFor(ours), body, secret, { now, toleranceSec: 0 })).toBe(true);
    expect(verifyStandardWebhook(headersFor(ours), body, secret, { now: new Date(now.getTime() + 1000), toleranceSec: 0.5 })).toBe(false);
    expect(verifyStandardWebhook(headersFor(ours), body, secret, { now: new Date(now.getTime() + 1000), toleranceSec: 1.5 })).toBe(true);
  });

  it('throws a typed error for a secret that is none', () => {
    for (const bad of ['', 'whsec_', 'whsec_!!!', 'whsec_c2hvcnQ=', undefined]) {
      expect(() => verifyStandardWebhook(headersFor(ours), body, bad as string, { now })).toThrow(WebhookVerificationKeyError);
    }
  });
});

/** A Uint8Array of the text whose buffer was transferred away, as `structuredClone` with `transfer` leaves it. */
function detached(text: string): Uint8Array {
  const bytes = new Uint8Array(Buffer.from(text));
  structuredClone(bytes.buffer, { transfer: [bytes.buffer] });
  return bytes;
}
