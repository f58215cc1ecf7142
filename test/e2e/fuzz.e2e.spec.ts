import { WebhookError, WebhookIdentityService, WebhookListenerService, WebhookUrlService } from '../../lib/index.js';
import { selectedDatabases } from '../src/databases.js';
import { createTestApp, type TestApp } from '../src/test-app.js';

/** A small seeded generator, so a failing case can be replayed. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] };
}

const NASTY_VALUES: readonly unknown[] = [
  undefined,
  null,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  -1,
  0,
  1,
  1.5,
  2 ** 31,
  2 ** 53,
  -(2 ** 63),
  '',
  ' ',
  'x'.repeat(10_240),
  "'; DROP TABLE webhook_listener; --",
  '" OR "1"="1',
  '%',
  '_',
  '\\',
  '\u0000',
  '💥'.repeat(30),
  'ACTIVE',
  'DELETED',
  'Order',
  'https://example.com/ok',
  'http://127.0.0.1/x',
  'javascript:alert(1)',
  true,
  false,
  [],
  ['CONFIRMED'],
  [1, 2],
  {},
  JSON.parse('{"__proto__": {"polluted": 1}}'),
  { constructor: { prototype: { polluted: 1 } } },
  new Date('invalid'),
  new Date(0),
  () => 1,
  Symbol('s'),
  10n,
];
const NASTY_KEYS = ['name; --', '__proto__', 'constructor', 'prototype', 'url.id', 'id', 'version', 'linkedSpaceId', "x' OR 1=1", ''];
const VALID_VALUES: Record<string, readonly unknown[]> = {
  name: ['fuzzed', 'n'.repeat(50)],
  entity: ['Order', 'Refund'],
  entityStates: [[], ['CONFIRMED'], ['PENDING', 'SHIPPED']],
  notifyEveryChange: [true, false],
  enablePayloadSignatureAndState: [true, false],
  url: ['https://fuzz.example.com/hook', 'http://fuzz.example.com:8080/a?b=c'],
  state: ['ACTIVE', 'INACTIVE', 'CREATE'],
  applicationManaged: [true, false],
};
const CREATE_KEYS = [
  'name',
  'entity',
  'entityStates',
  'notifyEveryChange',
  'enablePayloadSignatureAndState',
  'url',
  'identity',
  'state',
  'applicationManaged',
];
const FIELD_NAMES = [
  'id',
  'name',
  'state',
  'url.id',
  'url.url',
  'identity.id',
  'createdOn',
  'notifyEveryChange',
  'name; DROP TABLE x',
  '__proto__',
  'url.__proto__',
];
const OPERATORS = ['EQUALS', 'NOT_EQUALS', 'CONTAINS', 'GREATER_THAN', 'IS_NULL', 'IS_NOT_NULL', 'EQUALS_IGNORE_CASE', 'DROP', ''];

describe.each(selectedDatabases())('malformed input to every service method on %s', (database) => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await createTestApp(database);
  });
  afterAll(() => testApp.close());

  async function snapshot(): Promise<string> {
    const tables = ['webhook_listener', 'webhook_url', 'webhook_identity'];
    const rows = await Promise.all(tables.map((table) => testApp.dataSource.query(`SELECT * FROM ${table} ORDER BY id`)));
    return JSON.stringify(rows);
  }

  it('answers each call with a valid result or a typed error, and an error writes nothing', async () => {
    const rng = random(Number(process.env.WEBHOOK_FUZZ_SEED ?? 20261127));
    const listeners = testApp.get(WebhookListenerService);
    const urls = testApp.get(WebhookUrlService);
    const identities = testApp.get(WebhookIdentityService);
    const space = 4242;
    const url = await urls.create(space, { name: 'seed', url: 'https://seed.example.com/x' });
    const identity = await identities.create(space, { name: 'seed' });
    const listener = await listeners.create(space, { name: 'seed', entity: 'Order', url: url.id });
    const someId = () => (rng.next() < 0.7 ? rng.pick([listener.id, url.id, identity.id]) : rng.pick(NASTY_VALUES));
    const someSpace = () => (rng.next() < 0.7 ? space : rng.pick<unknown>([1, ...NASTY_VALUES]));

    const value = (): unknown => rng.pick(NASTY_VALUES);
    const input = (): unknown => {
      if (rng.next() < 0.1) return value();
      const result: Record<string, unknown> = {};
      const keyCount = 1 + Math.floor(rng.next() * 5);
      if (rng.next() < 0.5) Object.assign(result, { name: 'fuzzed', entity: 'Order', url: 'https://fuzz.example.com/hook' });
      for (let i = 0; i < keyCount; i++) {
        const key = rng.next() < 0.8 ? rng.pick(CREATE_KEYS) : rng.pick(NASTY_KEYS);
        const fieldValue = VALID_VALUES[key] && rng.next() < 0.7 ? rng.pick(VALID_VALUES[key]) : value();
        Object.defineProperty(result, key, { value: fieldValue, enumerable: true, configurable: true, writable: true });
      }
      return result;
    };
    const filter = (depth: number): unknown => {
      if (rng.next() < 0.1) return value();
      if (depth < 3 && rng.next() < 0.4) {
        return {
          type: rng.pick(['AND', 'OR', 'LEAF', 'NOT']),
          children: Array.from({ length: Math.floor(rng.next() * 3) }, () => filter(depth + 1)),
        };
      }
      return {
        type: 'LEAF',
        fieldName: rng.pick(FIELD_NAMES),
        operator: rng.pick(OPERATORS),
        value: rng.next() < 0.5 ? rng.pick<unknown>([listener.id, 'seed', 'ACTIVE']) : value(),
      };
    };
    const query = (): unknown =>
      rng.next() < 0.1
        ? value()
        : {
            filter: filter(0),
            orderBys: rng.next() < 0.5 ? undefined : [{ fieldName: rng.pick(FIELD_NAMES), sorting: rng.pick(['ASC', 'DESC', 'sideways']) }],
            numberOfEntities: rng.pick([undefined, 1, 100, 101, -1, Number.NaN]),
          };

    type Call = [string, () => Promise<unknown>, (result: unknown) => void];
    const isObjectWithId = (result: unknown) => expect(result).toEqual(expect.objectContaining({ id: expect.any(Number) }));
    const isPage = (result: unknown) => {
      expect(Array.isArray(result)).toBe(true);
      expect((result as unknown[]).length).toBeLessThanOrEqual(100);
    };
    const isCount = (result: unknown) => expect(Number.isInteger(result) && (result as number) >= 0).toBe(true);
    const services = { listeners, urls, identities } as const;
    const calls: Call[] = Object.entries(services).flatMap(([name, service]): Call[] => [
      [`${name}.create`, () => service.create(someSpace() as number, input() as never), isObjectWithId],
      [`${name}.read`, () => service.read(someSpace() as number, someId() as number), isObjectWithId],
      [
        `${name}.update`,
        () =>
          service.update(
            someSpace() as number,
            { ...(input() as object), id: someId(), version: rng.next() < 0.6 ? rng.pick([1, 2, 3]) : value() } as never,
          ),
        isObjectWithId,
      ],
      [`${name}.delete`, () => service.delete(someSpace() as number, someId() as number), isObjectWithId],
      [`${name}.search`, () => service.search(someSpace() as number, query() as never), isPage],
      [`${name}.count`, () => service.count(someSpace() as number, filter(0) as never), isCount],
    ]);
    calls.push(
      [
        'identities.readPublicKey',
        () => identities.readPublicKey(rng.pick<unknown>([identity.keyId, ...NASTY_VALUES]) as string),
        isObjectWithId.bind(null),
      ],
      [
        'identities.revealSecret',
        () => identities.revealSecret(someSpace() as number, someId() as number),
        (secret) => expect(String(secret)).toMatch(/^whsec_/),
      ],
    );
    calls[calls.length - 2][2] = (result) => expect(result).toEqual({ id: identity.keyId, publicKey: identity.publicKey });

    const outcomes = { results: 0, typedErrors: 0, byError: {} as Record<string, number> };
    for (let i = 0; i < 1000; i++) {
      const [name, call, check] = rng.pick(calls);
      const before = await snapshot();
      let result: unknown;
      let error: unknown;
      try {
        result = await call();
      } catch (caught) {
        error = caught;
      }
      if (error === undefined) {
        outcomes.results++;
        check(result);
      } else {
        outcomes.typedErrors++;
        outcomes.byError[(error as Error).name] = (outcomes.byError[(error as Error).name] ?? 0) + 1;
        if (!(error instanceof WebhookError)) throw new Error(`${name} (call ${i}) threw an untyped error: ${String(error)}`);
        expect(await snapshot()).toBe(before);
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    }
    console.log(`${database}: ${outcomes.results} results, ${outcomes.typedErrors} typed errors ${JSON.stringify(outcomes.byError)}`);
    expect(outcomes.results).toBeGreaterThan(20);
    expect(outcomes.typedErrors).toBeGreaterThan(100);
  });
});
