import {
  CreationEntityState,
  WebhookIdentityService,
  WebhookDelivery,
  WebhookListenerRepository,
  WebhookListenerService,
  WebhookNotFoundError,
  WebhookStateError,
  WebhookUrlService,
  WebhookValidationError,
  WebhookVersionConflictError,
  type CreateWebhookListenerInput,
  WEBHOOK_EVENT_EMITTER,
  WEBHOOK_LISTENER_STATE_CHANGED,
} from '../../lib/index.js';
import type { EventEmitter2 } from '../../lib/events/event-emitter.js';
import { IsNull, Like, Not, type DataSourceOptions } from 'typeorm';
import { connectionOptions, describeOnlyOn, selectedDatabases } from '../src/databases.js';
import { freshSpace } from '../src/spaces.js';
import { Order, OrderState } from '../src/order.entity.js';
import { createTestApp, type TestApp } from '../src/test-app.js';

describe.each(selectedDatabases())('WebhookListenerService on %s', (database) => {
  let testApp: TestApp;
  let listeners: WebhookListenerService;
  let urls: WebhookUrlService;
  let identities: WebhookIdentityService;

  beforeAll(async () => {
    testApp = await createTestApp(database);
    listeners = testApp.get(WebhookListenerService);
    urls = testApp.get(WebhookUrlService);
    identities = testApp.get(WebhookIdentityService);
  });
  afterAll(() => testApp.close());

  const valid = (overrides: Partial<CreateWebhookListenerInput> = {}): CreateWebhookListenerInput => ({
    name: 'Order events',
    entity: 'Order',
    entityStates: ['CONFIRMED', 'SHIPPED'],
    url: 'https://receiver.example.com/webhooks',
    ...overrides,
  });

  async function rowCounts() {
    const count = async (table: string) => Number((await testApp.dataSource.query(`SELECT COUNT(*) AS n FROM ${table}`))[0].n);
    return { listeners: await count('webhook_listener'), urls: await count('webhook_url'), identities: await count('webhook_identity') };
  }

  describe('WebhookListenerRepository', () => {
    it('reads the ACTIVE listeners of a space for an entity, and those that watch a state', async () => {
      const space = freshSpace();
      const repository = testApp.get(WebhookListenerRepository);
      const confirmed = await listeners.create(space, valid({ name: 'confirmed', entityStates: ['CONFIRMED'] }));
      const every = await listeners.create(space, valid({ name: 'every', entityStates: [] }));
      await listeners.create(space, valid({ name: 'inactive', state: CreationEntityState.INACTIVE }));
      await listeners.create(space, valid({ name: 'parcel', entity: 'Parcel', entityStates: [] }));
      await listeners.create(freshSpace(), valid({ name: 'elsewhere', entityStates: [] }));

      const ids = (found: { id: number }[]) => found.map((listener) => listener.id);
      expect(ids(await repository.findActiveForEntity(space, 'Order'))).toEqual([confirmed.id, every.id]);
      expect(ids(await repository.findActiveForState(space, 'Order', 'CONFIRMED'))).toEqual([confirmed.id, every.id]);
      expect(ids(await repository.findActiveForState(space, 'Order', 'SHIPPED'))).toEqual([every.id]);
      expect(await repository.count({ where: { linkedSpaceId: space } })).toBe(4);
      expect((await repository.findOne({ where: { id: confirmed.id } }))?.entityStates).toEqual(['CONFIRMED']);
    });

    it("never gives the private key or the secret of a listener's identity, even when selected", async () => {
      const space = freshSpace();
      const repository = testApp.get(WebhookListenerRepository);
      const identity = await testApp.get(WebhookIdentityService).create(space, { name: 'signer' });
      const listener = await listeners.create(space, valid({ identity: identity.id }));
      const select = { id: true, identity: { id: true, keyId: true, publicKey: true, privateKey: true, secret: true } } as const;

      const [found] = await repository.find({ where: { id: listener.id }, relations: { identity: true }, select });
      const one = await repository.findOne({ where: { id: listener.id }, relations: { identity: true }, select });
      for (const read of [found, one!]) {
        expect(read.identity).toEqual({ id: identity.id, keyId: identity.keyId, publicKey: identity.publicKey });
      }
      // Nor can they be probed by a filter or an ordering.
      const secret = await testApp.get(WebhookIdentityService).revealSecret(space, identity.id);
      const probes: [string, () => Promise<unknown>][] = [
        ['options.where.identity.secret', () => repository.count({ where: { identity: { secret } } })],
        [
          'options.where.identity.secret',
          () => repository.find({ where: [{ id: listener.id }, { identity: { secret: Like('whsec_%') } }] }),
        ],
        ['options.where.identity.privateKey', () => repository.findOne({ where: { identity: { privateKey: Not(IsNull()) } } })],
        ['options.order.identity.secret', () => repository.find({ order: { identity: { secret: 'ASC' } } })],
        // Arrays, which TypeORM reads as OR at any level (nested ones beyond its types).
        ['options.where.identity.secret', () => repository.count({ where: { identity: [{ secret: Like('whsec_%') }] } })],
        ['options.where.identity.secret', () => repository.count({ where: [[{ identity: { secret: Like('whsec_%') } }]] as never })],
        ['options.where.identity.privateKey', () => repository.count({ where: { identity: [[{ privateKey: Not(IsNull()) }]] } as never })],
      ];
      // An array whose own methods say otherwise, and a proxy that denies having the key.
      const disguised = Object.assign([{ secret: Like('whsec_%') }], { flatMap: () => [] });
      const denying = new Proxy({ secret: Like('whsec_%') }, { has: () => false });
      probes.push(
        ['options.where.identity.secret', () => repository.count({ where: { identity: disguised } })],
        ['options.where.identity.secret', () => repository.count({ where: { identity: denying } })],
      );
      for (const [field, probe] of probes) await expect(probe()).rejects.toMatchObject({ name: 'WebhookValidationError', field });
      // Filters on the identity's other fields stay open.
      const mine = { linkedSpaceId: space };
      const open = [
        { ...mine, identity: { keyId: identity.keyId } },
        { ...mine, identity: [{ state: CreationEntityState.DELETED }] },
      ];
      expect(await repository.count({ where: open })).toBe(1);
    });

    it('reads the due deliveries of a space, earliest first, of one listener or all, and not those due later', async () => {
      const space = freshSpace();
      const repository = testApp.get(WebhookListenerRepository);
      const confirmed = await listeners.create(space, valid({ name: 'confirmed', entityStates: ['CONFIRMED'] }));
      const every = await listeners.create(space, valid({ name: 'every', entityStates: [] }));
      const orders = testApp.dataSource.getRepository(Order);
      await orders.save({ tenantId: space, state: OrderState.CONFIRMED });
      await orders.save({ tenantId: space, state: OrderState.PENDING });
      await orders.save({ tenantId: freshSpace(), state: OrderState.CONFIRMED });
      const deliveries = testApp.dataSource.getRepository(WebhookDelivery);
      const [, , later] = await deliveries.find({ where: { linkedSpaceId: space }, order: { id: 'ASC' } });
      await deliveries.update(later.id, { nextAttemptAt: Date.now() + 3_600_000 });

      const due = await repository.findDueDeliveries(space);
      expect(due.map((delivery) => [delivery.listenerId, delivery.state])).toEqual([
        [confirmed.id, 'PENDING'],
        [every.id, 'PENDING'],
      ]);
      expect((await repository.findDueDeliveries(space, { listenerId: every.id })).map((delivery) => delivery.id)).toEqual([due[1].id]);
      expect((await repository.findDueDeliveries(space, { limit: 1 })).map((delivery) => delivery.id)).toEqual([due[0].id]);
      for (const [spaceId, options, field] of [
        [0, {}, 'spaceId'],
        [space, { limit: 101 }, 'options.limit'],
        [space, { listenerId: -1 }, 'options.listenerId'],
        [space, { state: 'PENDING' }, 'options.state'],
      ] as const) {
        await expect(repository.findDueDeliveries(spaceId, options as never)).rejects.toMatchObject({
          name: 'WebhookValidationError',
          field,
        });
      }
    });
  });

  describe('create', () => {
    it('stores a listener with its defaults and returns it with its URL', async () => {
      const space = freshSpace();
      const created = await listeners.create(space, valid());
      expect(created).toMatchObject({
        id: expect.any(Number),
        linkedSpaceId: space,
        name: 'Order events',
        entity: 'Order',
        entityStates: ['CONFIRMED', 'SHIPPED'],
        notifyEveryChange: false,
        enablePayloadSignatureAndState: true,
        state: CreationEntityState.ACTIVE,
        identity: null,
        plannedPurgeDate: null,
        version: 1,
        url: { url: 'https://receiver.example.com/webhooks', linkedSpaceId: space, state: 'ACTIVE' },
      });
      expect(created.createdOn).toBeInstanceOf(Date);
      expect(created.updatedOn).toBeInstanceOf(Date);
      expect(await listeners.read(space, created.id)).toEqual(created);
    });

    it('reuses a live URL of the space with the same address, and creates one per space', async () => {
      const space = freshSpace();
      const first = await listeners.create(space, valid());
      const second = await listeners.create(space, valid({ name: 'second' }));
      const elsewhere = await listeners.create(freshSpace(), valid());
      expect(second.url.id).toBe(first.url.id);
      expect(elsewhere.url.id).not.toBe(first.url.id);
      expect(await urls.count(space)).toBe(1);
    });

    it('puts listeners created at once for the same new address on one URL', async () => {
      const space = freshSpace();
      const created = await Promise.all(
        [1, 2, 3, 4, 5, 6, 7, 8].map((n) =>
          listeners.create(space, valid({ name: `at once ${n}`, url: 'https://together.example.com/hook' })),
        ),
      );
      expect(new Set(created.map((listener) => listener.url.id)).size).toBe(1);
      expect(await urls.count(space)).toBe(1);
    });

    it('reuses a URL only for exactly its address, also where the database compares text without case', async () => {
      const space = freshSpace();
      const lower = await listeners.create(space, valid({ url: 'https://hooks.example.com/tenant-a' }));
      const upper = await listeners.create(space, valid({ name: 'upper', url: 'https://hooks.example.com/Tenant-A' }));
      expect(upper.url.id).not.toBe(lower.url.id);
      expect(upper.url.url).toBe('https://hooks.example.com/Tenant-A');
      const again = await listeners.create(space, valid({ name: 'again', url: 'https://hooks.example.com/Tenant-A' }));
      expect(again.url.id).toBe(upper.url.id);
    });

    it('puts a listener given an address on the ACTIVE URL of that address, and refuses one whose URL of that address is not ACTIVE', async () => {
      const space = freshSpace();
      const address = 'https://paused.example.com/hook';
      const paused = await urls.create(space, { name: 'paused', url: address, state: CreationEntityState.INACTIVE });
      const error = await listeners.create(space, valid({ url: address })).catch((e) => e);
      expect(error).toBeInstanceOf(WebhookValidationError);
      expect(error.field).toBe('url');
      expect(error.message).toContain(`WebhookUrl ${paused.id}`);
      expect(await listeners.count(space)).toBe(0);

      const active = await urls.create(space, { name: 'active', url: address });
      expect((await listeners.create(space, valid({ url: address }))).url.id).toBe(active.id);
      expect((await listeners.create(space, valid({ name: 'on paused', url: paused.id }))).url.id).toBe(paused.id);
    });

    it('takes a WebhookUrl id and an identity id of the same space', async () => {
      const space = freshSpace();
      const url = await urls.create(space, { name: 'receiver', url: 'http://receiver.example.com/in' });
      const identity = await identities.create(space, { name: 'signing' });
      const created = await listeners.create(space, valid({ url: url.id, identity: identity.id }));
      expect(created.url.id).toBe(url.id);
      expect(created.identity).toMatchObject({ id: identity.id, keyId: identity.keyId });
      expect(created.identity).not.toHaveProperty('privateKey');
      expect(created.identity).not.toHaveProperty('secret');
    });

    it('treats a URL or identity of another space as not found, and writes nothing', async () => {
      const space = freshSpace();
      const foreignUrl = await urls.create(freshSpace(), { name: 'theirs', url: 'https://other.example.com/x' });
      const foreignIdentity = await identities.create(freshSpace(), { name: 'theirs' });
      const before = await rowCounts();
      await expect(listeners.create(space, valid({ url: foreignUrl.id }))).rejects.toThrow(WebhookNotFoundError);
      await expect(listeners.create(space, valid({ identity: foreignIdentity.id }))).rejects.toThrow(WebhookNotFoundError);
      await expect(listeners.create(space, valid({ url: 2_000_000_000 }))).rejects.toThrow(WebhookNotFoundError);
      expect(await rowCounts()).toEqual(before);
    });

    it('refuses a URL that is being deleted', async () => {
      const space = freshSpace();
      const url = await urls.create(space, { name: 'old', url: 'https://old.example.com/x' });
      await urls.delete(space, url.id);
      await expect(listeners.create(space, valid({ url: url.id }))).rejects.toThrow(expect.objectContaining({ field: 'url' }));
    });

    it('accepts an empty state list (every state) and may start in CREATE or INACTIVE', async () => {
      const space = freshSpace();
      expect((await listeners.create(space, valid({ entityStates: [] }))).entityStates).toEqual([]);
      expect((await listeners.create(space, valid({ entityStates: undefined }))).entityStates).toEqual([]);
      expect((await listeners.create(space, valid({ state: CreationEntityState.CREATE }))).state).toBe('CREATE');
      expect((await listeners.create(space, valid({ state: CreationEntityState.INACTIVE }))).state).toBe('INACTIVE');
    });

    it.each<[string, Record<string, unknown>]>([
      ['name', { name: '' }],
      ['name', { name: 'x'.repeat(51) }],
      ['name', { name: 42 }],
      ['entity', { entity: 'Invoice' }],
      ['entity', { entity: undefined }],
      ['entityStates[1]', { entityStates: ['CONFIRMED', 'LOST'] }],
      ['entityStates', { entityStates: 'CONFIRMED' }],
      ['notifyEveryChange', { notifyEveryChange: 'yes' }],
      ['enablePayloadSignatureAndState', { enablePayloadSignatureAndState: 1 }],
      ['url', { url: 'ftp://files.example.com/x' }],
      ['url', { url: 'http://a' }],
      ['url', { url: `https://example.com/${'p'.repeat(500)}` }],
      ['url', { url: 'https://user:secret@example.com/hook' }],
      ['url', { url: 'https://example.com/hook#part' }],
      ['url', { url: 'not a url at all' }],
      ['url', { url: 0 }],
      ['url', { url: null }],
      ['identity', { identity: -3 }],
      ['state', { state: 'DELETING' }],
      ['state', { state: 'DELETED' }],
      ['state', { state: 'ENABLED' }],
      ['colour', { colour: 'red' }],
      ['__proto__', JSON.parse('{"__proto__": {"polluted": true}}')],
    ])('refuses a bad %s and writes nothing', async (field, overrides) => {
      const before = await rowCounts();
      const error = await listeners.create(freshSpace(), { ...valid(), ...overrides } as CreateWebhookListenerInput).catch((e) => e);
      expect(error).toBeInstanceOf(WebhookValidationError);
      expect(error.field).toBe(field);
      expect(await rowCounts()).toEqual(before);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('takes an instance of a class of the application, as a ValidationPipe gives it, and refuses what is no object', async () => {
      class CreateListenerDto {
        name = 'From a DTO';
        entity = 'Order';
        entityStates = ['CONFIRMED'];
        url = 'https://dto.example.com/hook';
      }
      const space = freshSpace();
      const created = await listeners.create(space, new CreateListenerDto());
      expect(created).toMatchObject({ name: 'From a DTO', entityStates: ['CONFIRMED'] });
      expect(created.url.url).toBe('https://dto.example.com/hook');
      const found = await listeners.search(space, Object.assign(new (class SearchDto {})(), { numberOfEntities: 1 }));
      expect(found.map((listener) => listener.id)).toEqual([created.id]);

      // A getter, a tag of its own, and a field of the class left undefined (`entity`, which cannot change).
      class UpdateListenerDto {
        entity?: string = undefined;
        readonly #name: string;
        constructor(
          readonly id: number,
          readonly version: number,
          name: string,
        ) {
          this.#name = name;
        }
        get name() {
          return this.#name;
        }
        get [Symbol.toStringTag]() {
          return 'UpdateListenerDto';
        }
      }
      const renamed = await listeners.update(space, new UpdateListenerDto(created.id, created.version, 'Renamed by a DTO') as never);
      expect(renamed).toMatchObject({ name: 'Renamed by a DTO', version: created.version + 1 });
      const inherited = Object.assign(Object.create({ name: 'Inherited' }), { id: created.id, version: renamed.version });
      expect((await listeners.update(space, inherited)).name).toBe('Inherited');

      const before = await rowCounts();
      const taggedArray = Object.assign([valid()], { [Symbol.toStringTag]: 'Object' });
      for (const input of [null, [valid()], taggedArray, new Date(), new Map(Object.entries(valid())), 'name']) {
        await expect(listeners.create(space, input as never)).rejects.toMatchObject({ name: 'WebhookValidationError', field: 'input' });
      }
      expect(await rowCounts()).toEqual(before);
    });

    it('counts a name in characters as the database does, so 50 emoji fit and 51 do not', async () => {
      const space = freshSpace();
      const fifty = '🦊'.repeat(50);
      const created = await listeners.create(space, valid({ name: fifty }));
      expect((await listeners.read(space, created.id)).name).toBe(fifty);
      await expect(listeners.create(space, valid({ name: `${fifty}🦊` }))).rejects.toThrow(expect.objectContaining({ field: 'name' }));
    });

    it('refuses a bad space id', async () => {
      for (const spaceId of [0, -1, 1.5, Number.NaN, 2 ** 40, '1' as unknown as number]) {
        await expect(listeners.create(spaceId, valid())).rejects.toThrow(expect.objectContaining({ field: 'spaceId' }));
      }
    });
  });

  describe('read', () => {
    it('hides listeners of other spaces', async () => {
      const created = await listeners.create(freshSpace(), valid());
      await expect(listeners.read(freshSpace(), created.id)).rejects.toThrow(WebhookNotFoundError);
    });

    it('refuses ids that cannot exist', async () => {
      for (const id of [0, -5, 2.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
        await expect(listeners.read(1, id)).rejects.toThrow(expect.objectContaining({ field: 'id' }));
      }
      await expect(listeners.read(1, 2_147_483_647)).rejects.toThrow(WebhookNotFoundError);
    });
  });

  describe('update', () => {
    it('changes the allowed fields and bumps the version', async () => {
      const space = freshSpace();
      const created = await listeners.create(space, valid());
      const updated = await listeners.update(space, {
        id: created.id,
        version: created.version,
        name: 'Renamed',
        entityStates: ['CANCELLED'],
        notifyEveryChange: true,
        enablePayloadSignatureAndState: false,
      });
      expect(updated).toMatchObject({
        name: 'Renamed',
        entityStates: ['CANCELLED'],
        notifyEveryChange: true,
        enablePayloadSignatureAndState: false,
        version: created.version + 1,
        url: { id: created.url.id },
      });
      expect(await listeners.read(space, created.id)).toEqual(updated);
    });

    it('dates an update and a deletion by the database clock no earlier than the creation', async () => {
      const space = freshSpace();
      const created = await listeners.create(space, valid());
      const updated = await listeners.update(space, { id: created.id, version: created.version, name: 'Renamed' });
      const deleted = await listeners.delete(space, created.id);
      const urlUpdated = await urls.update(space, { id: created.url.id, version: created.url.version, name: 'Renamed too' });
      expect(updated.updatedOn.getTime()).toBeGreaterThanOrEqual(created.createdOn.getTime());
      expect(deleted.updatedOn.getTime()).toBeGreaterThanOrEqual(updated.updatedOn.getTime());
      expect(urlUpdated.updatedOn.getTime()).toBeGreaterThanOrEqual(urlUpdated.createdOn.getTime());
    });

    it('gives a version conflict for a stale version and leaves the row as it was', async () => {
      const space = freshSpace();
      const created = await listeners.create(space, valid());
      await listeners.update(space, { id: created.id, version: created.version, name: 'first writer' });
      const error = await listeners.update(space, { id: created.id, version: created.version, name: 'second writer' }).catch((e) => e);
      expect(error).toBeInstanceOf(WebhookVersionConflictError);
      expect(error).toMatchObject({ expectedVersion: 1, actualVersion: 2 });
      expect((await listeners.read(space, created.id)).name).toBe('first writer');
    });

    it('lets exactly one of two concurrent updates of the same version win', async () => {
      const space = freshSpace();
      const created = await listeners.create(space, valid());
      const results = await Promise.allSettled(
        ['a', 'b', 'c', 'd'].map((name) => listeners.update(space, { id: created.id, version: created.version, name })),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const result of results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')) {
        expect(result.reason).toBeInstanceOf(WebhookVersionConflictError);
      }
      expect((await listeners.read(space, created.id)).version).toBe(created.version + 1);
    });

    it.each(['entity', 'url', 'identity', 'linkedSpaceId'])('refuses to change %s after create', async (field) => {
      const space = freshSpace();
      const created = await listeners.create(space, valid());
      const error = await listeners
        .update(space, { id: created.id, version: created.version, [field]: field === 'entity' ? 'Refund' : 1 })
        .catch((e) => e);
      expect(error).toBeInstanceOf(WebhookValidationError);
      expect(error.field).toBe(field);
      expect(await listeners.read(space, created.id)).toEqual(created);
    });

    it.each<[string, Record<string, unknown>]>([
      ['name', { name: '' }],
      ['entityStates[0]', { entityStates: ['NOPE'] }],
      ['notifyEveryChange', { notifyEveryChange: null }],
      ['version', { version: 'one' }],
      ['id', { id: 'one' }],
      ['createdOn', { createdOn: new Date() }],
      ['state', { state: 'GONE' }],
    ])('refuses a bad %s and changes nothing', async (field, overrides) => {
      const space = freshSpace();
      const created = await listeners.create(space, valid());
      const error = await listeners.update(space, { id: created.id, version: created.version, ...overrides }).catch((e) => e);
      expect(error).toBeInstanceOf(WebhookValidationError);
      expect(error.field).toBe(field);
      expect(await listeners.read(space, created.id)).toEqual(created);
    });

    it('does not update a listener of another space', async () => {
      const created = await listeners.create(freshSpace(), valid());
      await expect(listeners.update(freshSpace(), { id: created.id, version: created.version, name: 'x' })).rejects.toThrow(
        WebhookNotFoundError,
      );
    });

    const { CREATE, ACTIVE, INACTIVE, DELETING, DELETED } = CreationEntityState;
    it.each([
      [CREATE, ACTIVE],
      [CREATE, INACTIVE],
      [ACTIVE, INACTIVE],
      [INACTIVE, ACTIVE],
      [ACTIVE, ACTIVE],
    ])('moves %s → %s', async (from, to) => {
      const space = freshSpace();
      const created = await listeners.create(space, valid({ state: from }));
      expect((await listeners.update(space, { id: created.id, version: created.version, state: to })).state).toBe(to);
    });

    it.each([
      [ACTIVE, CREATE],
      [INACTIVE, CREATE],
      [ACTIVE, DELETING],
      [ACTIVE, DELETED],
      [CREATE, DELETED],
    ])('refuses %s → %s', async (from, to) => {
      const space = freshSpace();
      const created = await listeners.create(space, valid({ state: from }));
      const error = await listeners.update(space, { id: created.id, version: created.version, state: to }).catch((e) => e);
      expect(error).toBeInstanceOf(WebhookStateError);
      expect(error).toMatchObject({ from, to });
      expect((await listeners.read(space, created.id)).state).toBe(from);
    });

    it('refuses any update of a DELETING listener, even to ACTIVE', async () => {
      const space = freshSpace();
      const created = await listeners.create(space, valid());
      const deleting = await listeners.delete(space, created.id);
      for (const change of [{ state: ACTIVE }, { name: 'late' }]) {
        await expect(listeners.update(space, { id: created.id, version: deleting.version, ...change })).rejects.toThrow(WebhookStateError);
      }
    });
  });

  describe('delete', () => {
    it('moves a live listener to DELETING and keeps it readable', async () => {
      const space = freshSpace();
      const created = await listeners.create(space, valid({ state: CreationEntityState.INACTIVE }));
      const deleted = await listeners.delete(space, created.id);
      expect(deleted).toMatchObject({ id: created.id, state: 'DELETING', version: created.version + 1 });
      expect(await listeners.read(space, created.id)).toEqual(deleted);
    });

    it('refuses to delete twice, and another space cannot delete', async () => {
      const space = freshSpace();
      const created = await listeners.create(space, valid());
      await expect(listeners.delete(freshSpace(), created.id)).rejects.toThrow(WebhookNotFoundError);
      await listeners.delete(space, created.id);
      await expect(listeners.delete(space, created.id)).rejects.toThrow(WebhookStateError);
    });
  });

  describe('events', () => {
    it('announces state changes made through the service', async () => {
      const heard: unknown[] = [];
      const emitter = testApp.app.get<EventEmitter2>(WEBHOOK_EVENT_EMITTER);
      const record = (payload: unknown) => heard.push(payload);
      emitter.on(WEBHOOK_LISTENER_STATE_CHANGED, record);
      try {
        const space = freshSpace();
        const created = await listeners.create(space, valid());
        const renamed = await listeners.update(space, { id: created.id, version: created.version, name: 'renamed' });
        await listeners.update(space, { id: created.id, version: renamed.version, state: CreationEntityState.INACTIVE });
        await listeners.delete(space, created.id);
        expect(heard).toEqual([
          { listenerId: created.id, spaceId: space, from: 'ACTIVE', to: 'INACTIVE' },
          { listenerId: created.id, spaceId: space, from: 'INACTIVE', to: 'DELETING' },
        ]);
      } finally {
        emitter.off(WEBHOOK_LISTENER_STATE_CHANGED, record);
      }
    });
  });

  describe('entities', () => {
    it('lists the registered webhook entities with their ids and states', () => {
      expect(listeners.listEntities()).toEqual(
        expect.arrayContaining([
          { name: 'Order', id: 1001, states: ['PENDING', 'CONFIRMED', 'SHIPPED', 'CANCELLED'] },
          { name: 'Refund', id: expect.any(Number), states: ['0', '1', '2'] },
        ]),
      );
    });
  });
});

describeOnlyOn('postgres')('WebhookListenerService on a PostgreSQL server whose default isolation is REPEATABLE READ', () => {
  it('puts listeners created at once for the same new address on one URL', async () => {
    const repeatableRead = { ...connectionOptions('postgres'), extra: { options: '-c default_transaction_isolation=repeatable\\ read' } };
    const testApp = await createTestApp('postgres', { connection: repeatableRead as DataSourceOptions });
    try {
      const [row] = await testApp.dataSource.query('SHOW default_transaction_isolation');
      expect(row.default_transaction_isolation).toBe('repeatable read');
      const space = freshSpace();
      const listeners = testApp.get(WebhookListenerService);
      const created = await Promise.all(
        [1, 2, 3, 4, 5, 6].map((n) => listeners.create(space, { name: `l${n}`, entity: 'Order', url: 'https://together.example.com/rr' })),
      );
      expect(new Set(created.map((listener) => listener.url.id)).size).toBe(1);
      expect(await testApp.get(WebhookUrlService).count(space)).toBe(1);
    } finally {
      await testApp.close();
    }
  });
});
