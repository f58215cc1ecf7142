import {
  CreationEntityState,
  WebhookIdentityService,
  WebhookListenerService,
  WebhookUrlService,
  WebhookDeliveryService,
  WebhookValidationError,
  type EntityQueryFilter,
  type WebhookListener,
} from '../../lib/index.js';
import { connectionOptions, describeOnlyOn, selectedDatabases } from '../src/databases.js';
import type { DataSourceOptions } from 'typeorm';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, type TestApp } from '../src/test-app.js';

const leaf = (fieldName: string, operator: EntityQueryFilter['operator'], value?: unknown): EntityQueryFilter => ({
  type: 'LEAF',
  fieldName,
  operator,
  value,
});
const and = (...children: EntityQueryFilter[]): EntityQueryFilter => ({ type: 'AND', children });
const or = (...children: EntityQueryFilter[]): EntityQueryFilter => ({ type: 'OR', children });

describe.each(selectedDatabases())('EntityQuery search on %s', (database) => {
  let testApp: TestApp;
  let listeners: WebhookListenerService;
  let space: number;
  let L: Record<'alpha' | 'beta' | 'gamma' | 'delta' | 'shipping', WebhookListener>;
  let urlA: number;

  beforeAll(async () => {
    testApp = await createTestApp(database);
    listeners = testApp.get(WebhookListenerService);
    space = freshSpace();
    const identity = await testApp.get(WebhookIdentityService).create(space, { name: 'key' });
    const a = 'https://a.example.com/hook';
    const b = 'https://b.example.com/hook';
    L = {
      alpha: await listeners.create(space, { name: 'Alpha orders', entity: 'Order', url: a }),
      beta: await listeners.create(space, {
        name: 'beta orders',
        entity: 'Order',
        url: b,
        notifyEveryChange: true,
        state: CreationEntityState.INACTIVE,
      }),
      gamma: await listeners.create(space, { name: 'Gamma refunds', entity: 'Refund', url: a, identity: identity.id }),
      delta: await listeners.create(space, {
        name: 'delta',
        entity: 'Refund',
        url: b,
        notifyEveryChange: true,
        state: CreationEntityState.CREATE,
      }),
      shipping: await listeners.create(space, { name: 'ALPHA shipping', entity: 'Order', url: b }),
    };
    L.shipping = await listeners.delete(space, L.shipping.id);
    urlA = L.alpha.url.id;
    await listeners.create(freshSpace(), { name: 'Alpha orders', entity: 'Order', url: a });
  });
  afterAll(() => testApp.close());

  async function names(filter?: EntityQueryFilter): Promise<string[]> {
    const found = await listeners.search(space, { filter });
    expect(await listeners.count(space, filter)).toBe(found.length);
    return found.map((listener) => listener.name);
  }

  it('returns every listener of the space, and only of the space, without a filter', async () => {
    expect(await names()).toEqual(['Alpha orders', 'beta orders', 'Gamma refunds', 'delta', 'ALPHA shipping']);
  });

  it.each<[string, () => EntityQueryFilter, string[]]>([
    ['EQUALS is case-sensitive', () => leaf('name', 'EQUALS', 'delta'), ['delta']],
    ['EQUALS finds no other case', () => leaf('name', 'EQUALS', 'DELTA'), []],
    ['NOT_EQUALS', () => leaf('state', 'NOT_EQUALS', 'ACTIVE'), ['beta orders', 'delta', 'ALPHA shipping']],
    ['EQUALS_IGNORE_CASE', () => leaf('name', 'EQUALS_IGNORE_CASE', 'ALPHA ORDERS'), ['Alpha orders']],
    [
      'NOT_EQUALS_IGNORE_CASE',
      () => leaf('name', 'NOT_EQUALS_IGNORE_CASE', 'alpha ORDERS'),
      ['beta orders', 'Gamma refunds', 'delta', 'ALPHA shipping'],
    ],
    ['CONTAINS', () => leaf('name', 'CONTAINS', 'orders'), ['Alpha orders', 'beta orders']],
    ['CONTAINS is case-sensitive', () => leaf('name', 'CONTAINS', 'Orders'), []],
    ['CONTAINS treats % and _ as text', () => leaf('name', 'CONTAINS', '%_'), []],
    ['NOT_CONTAINS', () => leaf('name', 'NOT_CONTAINS', 'a'), ['ALPHA shipping']],
    ['GREATER_THAN', () => leaf('id', 'GREATER_THAN', L.beta.id), ['Gamma refunds', 'delta', 'ALPHA shipping']],
    ['GREATER_THAN_OR_EQUAL', () => leaf('id', 'GREATER_THAN_OR_EQUAL', L.delta.id), ['delta', 'ALPHA shipping']],
    ['LESS_THAN', () => leaf('id', 'LESS_THAN', L.beta.id), ['Alpha orders']],
    ['LESS_THAN_OR_EQUAL', () => leaf('id', 'LESS_THAN_OR_EQUAL', L.beta.id), ['Alpha orders', 'beta orders']],
    [
      'GREATER_THAN on a date',
      () => leaf('createdOn', 'GREATER_THAN', new Date('2000-01-01T00:00:00Z')),
      ['Alpha orders', 'beta orders', 'Gamma refunds', 'delta', 'ALPHA shipping'],
    ],
    ['LESS_THAN on an ISO date string', () => leaf('createdOn', 'LESS_THAN', '2000-01-01T00:00:00Z'), []],
    ['LESS_THAN on an ISO day, taken in UTC', () => leaf('createdOn', 'LESS_THAN', '2000-01-01'), []],
    [
      'GREATER_THAN on an ISO time with an offset',
      () => leaf('createdOn', 'GREATER_THAN', '2000-01-01T01:00:00.5+01:00'),
      ['Alpha orders', 'beta orders', 'Gamma refunds', 'delta', 'ALPHA shipping'],
    ],
    ['IS_NULL on a relation', () => leaf('identity.id', 'IS_NULL'), ['Alpha orders', 'beta orders', 'delta', 'ALPHA shipping']],
    ['IS_NOT_NULL on a relation', () => leaf('identity.id', 'IS_NOT_NULL'), ['Gamma refunds']],
    [
      'IS_NULL on a date',
      () => leaf('plannedPurgeDate', 'IS_NULL'),
      ['Alpha orders', 'beta orders', 'Gamma refunds', 'delta', 'ALPHA shipping'],
    ],
    ['EQUALS on a boolean', () => leaf('notifyEveryChange', 'EQUALS', true), ['beta orders', 'delta']],
    ['NOT_EQUALS on a boolean', () => leaf('enablePayloadSignatureAndState', 'NOT_EQUALS', true), []],
    ['EQUALS on url.id', () => leaf('url.id', 'EQUALS', urlA), ['Alpha orders', 'Gamma refunds']],
    ['CONTAINS on url.url', () => leaf('url.url', 'CONTAINS', 'b.example'), ['beta orders', 'delta', 'ALPHA shipping']],
    ['a value with SQL in it is only a value', () => leaf('name', 'EQUALS', "x' OR '1'='1"), []],
    [
      'OR of ANDs',
      () =>
        or(
          and(leaf('entity', 'EQUALS', 'Order'), leaf('state', 'EQUALS', 'ACTIVE')),
          and(leaf('entity', 'EQUALS', 'Refund'), leaf('notifyEveryChange', 'EQUALS', true)),
        ),
      ['Alpha orders', 'delta'],
    ],
    [
      'AND of ORs, three levels deep',
      () =>
        and(
          or(leaf('name', 'CONTAINS', 'a'), leaf('name', 'CONTAINS', 'A')),
          leaf('state', 'NOT_EQUALS', 'CREATE'),
          or(leaf('url.id', 'EQUALS', urlA), and(leaf('identity.id', 'IS_NOT_NULL'), leaf('entity', 'EQUALS', 'Refund'))),
        ),
      ['Alpha orders', 'Gamma refunds'],
    ],
    ['a one-child OR', () => or(leaf('name', 'EQUALS', 'delta')), ['delta']],
    ['CONTAINS in a state, with any text', () => leaf('state', 'CONTAINS', 'ACTIV'), ['Alpha orders', 'beta orders', 'Gamma refunds']],
    ['EQUALS_IGNORE_CASE on a state', () => leaf('state', 'EQUALS_IGNORE_CASE', 'create'), ['delta']],
    ['a LEAF with an empty list of children', () => ({ ...leaf('name', 'EQUALS', 'delta'), children: [] }), ['delta']],
  ])('%s', async (_title, filter, expected) => {
    expect(await names(filter())).toEqual(expected);
  });

  it('finds an object by the dates read from it, to the millisecond', async () => {
    const [delta] = await listeners.search(space, { filter: leaf('name', 'EQUALS', 'delta') });
    for (const field of ['createdOn', 'updatedOn']) {
      const at = (delta as unknown as Record<string, Date>)[field];
      const matches = async (operator: string) => (await names(leaf(field, operator as never, at))).includes('delta');
      expect({
        field,
        EQUALS: await matches('EQUALS'),
        NOT_EQUALS: await matches('NOT_EQUALS'),
        GREATER_THAN_OR_EQUAL: await matches('GREATER_THAN_OR_EQUAL'),
        LESS_THAN_OR_EQUAL: await matches('LESS_THAN_OR_EQUAL'),
        GREATER_THAN: await matches('GREATER_THAN'),
        LESS_THAN: await matches('LESS_THAN'),
      }).toEqual({
        field,
        EQUALS: true,
        NOT_EQUALS: false,
        GREATER_THAN_OR_EQUAL: true,
        LESS_THAN_OR_EQUAL: true,
        GREATER_THAN: false,
        LESS_THAN: false,
      });
      expect((await names(leaf(field, 'GREATER_THAN', new Date(at.getTime() - 1)))).includes('delta')).toBe(true);
      expect((await names(leaf(field, 'LESS_THAN', new Date(at.getTime() + 1)))).includes('delta')).toBe(true);
    }
  });

  // The last hours of year 9999 in UTC are year 10000 as clock times east of it, which MySQL gets.
  it.each(['9999-12-31T23:59:59.999Z', '9999-12-31T20:00:00.000Z'])(
    'compares with %s, at the end of year 9999, as with any other date',
    async (last) => {
      const everyone = ['Alpha orders', 'beta orders', 'Gamma refunds', 'delta', 'ALPHA shipping'];
      expect(await names(leaf('createdOn', 'LESS_THAN_OR_EQUAL', last))).toEqual(everyone);
      expect(await names(leaf('createdOn', 'LESS_THAN', last))).toEqual(everyone);
      expect(await names(leaf('createdOn', 'GREATER_THAN', last))).toEqual([]);
      expect(await names(leaf('createdOn', 'GREATER_THAN_OR_EQUAL', last))).toEqual([]);
      expect(await names(leaf('createdOn', 'EQUALS', last))).toEqual([]);
      expect(await names(leaf('createdOn', 'NOT_EQUALS', last))).toEqual(everyone);
    },
  );

  it('orders and pages', async () => {
    const byState = await listeners.search(space, { orderBys: [{ fieldName: 'state', sorting: 'ASC' }] });
    expect(byState.map((l) => l.name)).toEqual(['Alpha orders', 'Gamma refunds', 'delta', 'ALPHA shipping', 'beta orders']);
    const page = await listeners.search(space, {
      orderBys: [{ fieldName: 'id', sorting: 'DESC' }],
      startingEntity: 1,
      numberOfEntities: 2,
    });
    expect(page.map((l) => l.name)).toEqual(['delta', 'Gamma refunds']);
  });

  it('returns at most 100 per page', async () => {
    const other = freshSpace();
    const url = await testApp.get(WebhookUrlService).create(other, { name: 'many', url: 'https://many.example.com/x' });
    for (let i = 0; i < 101; i++) await listeners.create(other, { name: `l${i}`, entity: 'Order', url: url.id });
    expect(await listeners.search(other, {})).toHaveLength(100);
    expect(await listeners.search(other, { startingEntity: 100 })).toHaveLength(1);
    expect(await listeners.count(other)).toBe(101);
  });

  it.each<[string, unknown]>([
    ['query.filter.fieldName', { filter: leaf('name; DROP TABLE webhook_listener', 'EQUALS', 'x') }],
    ['query.filter.fieldName', { filter: leaf('linkedSpaceId', 'EQUALS', 1) }],
    ['query.filter.fieldName', { filter: leaf('identity.secret', 'IS_NULL') }],
    ['query.filter.fieldName', { filter: leaf('constructor', 'IS_NULL') }],
    ['query.filter.operator', { filter: leaf('id', 'CONTAINS', '1') }],
    ['query.filter.operator', { filter: leaf('name', 'LIKE' as never, 'x') }],
    ['query.filter.value', { filter: leaf('id', 'EQUALS', '1 OR 1=1') }],
    ['query.filter.value', { filter: leaf('state', 'EQUALS', 'SLEEPING') }],
    ['query.filter.value', { filter: leaf('createdOn', 'GREATER_THAN', 'yesterday') }],
    ['query.filter.value', { filter: leaf('createdOn', 'GREATER_THAN', '-100000-01-01T00:00:00Z') }],
    // Forms Date would read in the application's time zone, guess at, or roll over to another day.
    ['query.filter.value', { filter: leaf('createdOn', 'GREATER_THAN', '1') }],
    ['query.filter.value', { filter: leaf('createdOn', 'GREATER_THAN', 'Dec 31 1999 23:00') }],
    ['query.filter.value', { filter: leaf('createdOn', 'GREATER_THAN', '2000-01-01T00:00') }],
    ['query.filter.value', { filter: leaf('createdOn', 'GREATER_THAN', '2000-02-30') }],
    ['query.filter.value', { filter: leaf('createdOn', 'GREATER_THAN', '2000-01-01T24:00Z') }],
    ['query.filter.value', { filter: leaf('id', 'GREATER_THAN', 2 ** 40) }],
    ['query.filter.value', { filter: leaf('name', 'CONTAINS', 'a\u0000') }],
    ['query.filter.value', { filter: leaf('notifyEveryChange', 'EQUALS', 'true') }],
    ['query.filter.children', { filter: { type: 'AND', children: [] } }],
    // Holes, which a list built in code may have: skipped, they would leave an OR that matches everything.
    ['query.filter.children[0]', { filter: { type: 'OR', children: new Array(1) } }],
    ['query.filter.children[1]', { filter: { type: 'AND', children: withHoleAfter(leaf('id', 'IS_NOT_NULL')) } }],
    ['query.orderBys[0]', { orderBys: new Array(1) }],
    [
      'query.orderBys[1].fieldName',
      {
        orderBys: [
          { fieldName: 'name', sorting: 'ASC' },
          { fieldName: 'name', sorting: 'DESC' },
        ],
      },
    ],
    ['query.filter.fieldName', { filter: { ...and(leaf('id', 'IS_NOT_NULL')), fieldName: 'no-such-field', operator: 'LIKE', value: 1 } }],
    ['query.filter.children', { filter: { ...leaf('id', 'IS_NOT_NULL'), children: [leaf('name', 'EQUALS', 'x')] } }],
    ['query.filter.value', { filter: leaf('state', 'EQUALS', 'active') }],
    ['query.filter.type', { filter: { type: 'XOR', children: [] } }],
    ['query.filter.children[0].children[0]', { filter: and(or('oops' as never)) }],
    ['query.orderBys[0].fieldName', { orderBys: [{ fieldName: 'name DESC; --', sorting: 'ASC' }] }],
    ['query.orderBys[0].sorting', { orderBys: [{ fieldName: 'name', sorting: 'UP' }] }],
    ['query.numberOfEntities', { numberOfEntities: 101 }],
    ['query.startingEntity', { startingEntity: -1 }],
    ['query.where', { where: '1=1' }],
  ])('refuses a bad %s', async (field, query) => {
    const error = await listeners.search(space, query as never).catch((e) => e);
    expect(error).toBeInstanceOf(WebhookValidationError);
    expect(error.field).toBe(field);
  });

  const badFilter = leaf('no-such-field', 'EQUALS', 1);
  it.each<[string, (deliveries: WebhookDeliveryService) => Promise<unknown>]>([
    ['WebhookListenerService.count', () => listeners.count(space, badFilter)],
    ['WebhookDeliveryService.countDeliveries', (deliveries) => deliveries.countDeliveries(space, badFilter)],
    ['WebhookDeliveryService.countDeliveries of space 0', (deliveries) => deliveries.countDeliveries(0)],
    ['WebhookDeliveryService.searchDeliveries', (deliveries) => deliveries.searchDeliveries(space, { filter: badFilter })],
    ['WebhookDeliveryService.searchAttempts', (deliveries) => deliveries.searchAttempts(space, { filter: badFilter })],
  ])('refuses bad input to %s as a rejected promise, not a throw', async (_method, call) => {
    let returned: Promise<unknown> | undefined;
    expect(() => (returned = call(testApp.get(WebhookDeliveryService)))).not.toThrow();
    await expect(returned).rejects.toThrow(WebhookValidationError);
  });

  it("refuses a delivery's state or an attempt's outcome that is none, and takes any text with a text operator", async () => {
    const deliveries = testApp.get(WebhookDeliveryService);
    for (const call of [
      () => deliveries.searchDeliveries(space, { filter: leaf('state', 'EQUALS', 'pending') }),
      () => deliveries.countDeliveries(space, leaf('state', 'NOT_EQUALS', 'DONE')),
      () => deliveries.searchAttempts(space, { filter: leaf('outcome', 'EQUALS', 'NOPE') }),
    ]) {
      await expect(call()).rejects.toMatchObject({
        name: 'WebhookValidationError',
        field: expect.stringMatching(/^(query\.)?filter\.value$/),
      });
    }
    await expect(deliveries.countDeliveries(space, leaf('state', 'GREATER_THAN', 'A'))).rejects.toMatchObject({
      field: 'filter.operator',
    });
    expect(await deliveries.countDeliveries(space, leaf('state', 'EQUALS', 'PENDING'))).toBe(0);
    expect(await deliveries.countDeliveries(space, leaf('state', 'CONTAINS', 'pend'))).toBe(0);
    expect(await deliveries.searchAttempts(space, { filter: leaf('outcome', 'EQUALS', 'TIMEOUT') })).toEqual([]);
  });

  it('refuses a filter nested deeper than 8 levels', async () => {
    let filter: EntityQueryFilter = leaf('id', 'IS_NOT_NULL');
    for (let i = 0; i < 9; i++) filter = and(filter);
    await expect(listeners.search(space, { filter })).rejects.toThrow(WebhookValidationError);
  });

  it('searches URLs and identities with their own fields', async () => {
    const found = await testApp.get(WebhookUrlService).search(space, { filter: leaf('url', 'CONTAINS', 'a.example') });
    expect(found.map((u) => u.url)).toEqual(['https://a.example.com/hook']);
    const identities = testApp.get(WebhookIdentityService);
    const [identity] = await identities.search(space, {});
    expect(await identities.search(space, { filter: leaf('keyId', 'EQUALS', identity.keyId) })).toEqual([identity]);
    expect(await identities.count(space, leaf('name', 'EQUALS', 'nope'))).toBe(0);
  });
});

/** The items, then one hole: the list is one longer than what it holds. */
function withHoleAfter<T>(...items: T[]): T[] {
  const list = [...items];
  list.length = items.length + 1;
  return list;
}

describe.each(selectedDatabases())('EntityQuery text order and comparison on %s', (database) => {
  let testApp: TestApp;
  let listeners: WebhookListenerService;
  const space = freshSpace();

  beforeAll(async () => {
    testApp = await createTestApp(database);
    listeners = testApp.get(WebhookListenerService);
    if (database === 'postgres') {
      // Most PostgreSQL servers order text by a language's rules, where "a" < "B" < "b"; the test server's
      // default is "C". A nondeterministic collation also takes "a", "A" and "á" for equal, and refuses
      // substring searches.
      await testApp.dataSource.query(
        `CREATE COLLATION IF NOT EXISTS webhook_test_level1 (provider = icu, locale = 'und-u-ks-level1', deterministic = false)`,
      );
      await testApp.dataSource.query(`ALTER TABLE webhook_listener ALTER COLUMN name TYPE varchar(50) COLLATE webhook_test_level1`);
    }
    const identity = await testApp.get(WebhookIdentityService).create(space, { name: 'key' });
    for (const name of ['b', 'B', 'e ', 'a', 'é', 'A', 'e']) {
      await listeners.create(space, {
        name,
        entity: 'Order',
        url: 'https://text.example.com/hook',
        identity: name === 'e' ? identity.id : undefined,
      });
    }
  });
  afterAll(async () => {
    if (database === 'postgres')
      await testApp.dataSource.query(`ALTER TABLE webhook_listener ALTER COLUMN name TYPE varchar(50) COLLATE "default"`);
    await testApp.close();
  });

  async function names(query: Parameters<WebhookListenerService['search']>[1]): Promise<string[]> {
    return (await listeners.search(space, query)).map((listener) => listener.name);
  }
  const byName = (sorting: 'ASC' | 'DESC') => [{ fieldName: 'name', sorting }];

  it('orders text by code point, whatever the column collation', async () => {
    expect(await names({ orderBys: byName('ASC') })).toEqual(['A', 'B', 'a', 'b', 'e', 'e ', 'é']);
    expect(await names({ orderBys: byName('DESC') })).toEqual(['é', 'e ', 'e', 'b', 'a', 'B', 'A']);
  });

  it('compares text by code point, so that pages read by the last name seen miss nothing', async () => {
    const seen: string[] = [];
    let page: string[];
    do {
      const after = seen.at(-1);
      page = await names({
        filter: after === undefined ? undefined : leaf('name', 'GREATER_THAN', after),
        orderBys: byName('ASC'),
        numberOfEntities: 2,
      });
      seen.push(...page);
    } while (page.length > 0);
    expect(seen).toEqual(['A', 'B', 'a', 'b', 'e', 'e ', 'é']);
    expect(await names({ filter: leaf('name', 'LESS_THAN_OR_EQUAL', 'a'), orderBys: byName('ASC') })).toEqual(['A', 'B', 'a']);
  });

  it('ignores only case with EQUALS_IGNORE_CASE: not accents, not trailing spaces', async () => {
    expect(await names({ filter: leaf('name', 'EQUALS_IGNORE_CASE', 'E'), orderBys: byName('ASC') })).toEqual(['e']);
    expect(await names({ filter: leaf('name', 'EQUALS_IGNORE_CASE', 'e '), orderBys: byName('ASC') })).toEqual(['e ']);
    expect(await names({ filter: leaf('name', 'NOT_EQUALS_IGNORE_CASE', 'a'), orderBys: byName('ASC') })).toEqual([
      'B',
      'b',
      'e',
      'e ',
      'é',
    ]);
  });

  it('finds text within text by code point', async () => {
    expect(await names({ filter: leaf('name', 'CONTAINS', 'e'), orderBys: byName('ASC') })).toEqual(['e', 'e ']);
    expect(await names({ filter: leaf('name', 'NOT_CONTAINS', 'e'), orderBys: byName('ASC') })).toEqual(['A', 'B', 'a', 'b', 'é']);
  });

  it('sorts an empty relation as the smallest value on every database', async () => {
    const byIdentity = (sorting: 'ASC' | 'DESC') => names({ orderBys: [{ fieldName: 'identity.id', sorting }, ...byName('ASC')] });
    expect(await byIdentity('ASC')).toEqual(['A', 'B', 'a', 'b', 'e ', 'é', 'e']);
    expect(await byIdentity('DESC')).toEqual(['e', 'A', 'B', 'a', 'b', 'e ', 'é']);
  });
});

describeOnlyOn('mariadb')('EntityQuery dates at the end of year 9999 with a timezone option of the MariaDB connection', () => {
  // mysql2 reads ' 09:00' as +09:00 and replaces what it cannot read ('+0530') by Z.
  it.each(['+09:00', '+01:00', ' 09:00', 'Z', '+0530'])('compares them as any other date with timezone %j', async (timezone) => {
    const testApp = await createTestApp('mariadb', { connection: { ...connectionOptions('mariadb'), timezone } as DataSourceOptions });
    try {
      const space = freshSpace();
      const listeners = testApp.get(WebhookListenerService);
      await listeners.create(space, { name: 'now', entity: 'Order', url: 'https://example.com/now' });
      for (const last of ['9999-12-31T23:59:59.999Z', '9999-12-31T20:00:00.000Z']) {
        expect(await listeners.count(space, leaf('createdOn', 'LESS_THAN', last))).toBe(1);
        expect(await listeners.count(space, leaf('createdOn', 'NOT_EQUALS', last))).toBe(1);
        expect(await listeners.count(space, leaf('createdOn', 'GREATER_THAN', last))).toBe(0);
        expect(await listeners.count(space, leaf('createdOn', 'EQUALS', last))).toBe(0);
      }
    } finally {
      await testApp.close();
    }
  });
});
