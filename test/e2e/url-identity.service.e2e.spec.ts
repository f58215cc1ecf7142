import { createPublicKey, createPrivateKey, createSign, createVerify, randomBytes } from 'node:crypto';
import {
  CreationEntityState,
  WebhookConfigurationError,
  WebhookIdentity,
  WebhookIdentityService,
  WebhookListenerService,
  type WebhookListener,
  WebhookNotFoundError,
  WebhookStateError,
  WebhookUrl,
  WebhookUrlService,
  WebhookValidationError,
  WebhookVersionConflictError,
} from '../../lib/index.js';
import type { EntitySubscriberInterface } from 'typeorm';
import { describeEachOf, selectedDatabases } from '../src/databases.js';
import { DeliveryStore } from '../../lib/delivery/delivery.store.js';
import { waitFor } from '../src/receiver.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, type TestApp } from '../src/test-app.js';

const KEY_ENCRYPTION_KEY = randomBytes(32).toString('base64');
const noop = () => undefined;

describe.each(selectedDatabases())('WebhookUrlService and WebhookIdentityService on %s', (database) => {
  let testApp: TestApp;
  let urls: WebhookUrlService;
  let identities: WebhookIdentityService;
  let listeners: WebhookListenerService;

  beforeAll(async () => {
    testApp = await createTestApp(database, { webhook: { signing: { keyEncryptionKey: KEY_ENCRYPTION_KEY } } });
    urls = testApp.get(WebhookUrlService);
    identities = testApp.get(WebhookIdentityService);
    listeners = testApp.get(WebhookListenerService);
  });
  afterAll(() => testApp.close());

  describe('WebhookUrlService', () => {
    it('creates, reads, updates and deletes a URL', async () => {
      const space = freshSpace();
      const created = await urls.create(space, { name: 'Shop receiver', url: 'https://shop.example.com/hooks?x=1' });
      expect(created).toMatchObject({
        linkedSpaceId: space,
        name: 'Shop receiver',
        url: 'https://shop.example.com/hooks?x=1',
        state: 'ACTIVE',
        applicationManaged: false,
        version: 1,
      });
      const updated = await urls.update(space, {
        id: created.id,
        version: 1,
        url: 'http://shop.example.com/v2',
        applicationManaged: true,
        state: CreationEntityState.INACTIVE,
      });
      expect(updated).toMatchObject({ url: 'http://shop.example.com/v2', applicationManaged: true, state: 'INACTIVE', version: 2 });
      await expect(urls.update(space, { id: created.id, version: 1, name: 'stale' })).rejects.toThrow(WebhookVersionConflictError);
      expect(await urls.delete(space, created.id)).toMatchObject({ state: 'DELETING' });
      await expect(urls.update(space, { id: created.id, version: 3, name: 'late' })).rejects.toThrow(WebhookStateError);
      await expect(urls.read(freshSpace(), created.id)).rejects.toThrow(WebhookNotFoundError);
    });

    it.each<[string, Record<string, unknown>]>([
      ['name', { name: 'n'.repeat(51) }],
      ['name', { name: 'shop\u0000receiver' }],
      ['url', { url: 'mailto:someone@example.com' }],
      ['url', { url: 'https://example.com/ with space' }],
      ['url', { url: 'https://:pw@example.com/x' }],
      ['applicationManaged', { applicationManaged: 'no' }],
      ['state', { state: 'DELETED' }],
      ['id', { id: 5 }],
    ])('refuses a bad %s on create', async (field, overrides) => {
      const space = freshSpace();
      const error = await urls.create(space, { name: 'ok', url: 'https://example.com/ok', ...overrides } as never).catch((e) => e);
      expect(error).toBeInstanceOf(WebhookValidationError);
      expect(error.field).toBe(field);
      expect(await urls.count(space)).toBe(0);
    });

    it('takes an @ in the query or the path, which is not a user name', async () => {
      const space = freshSpace();
      for (const url of ['https://example.com?a@b', 'https://example.com/p?to=a@b.ch', 'https://example.com/@team/hook']) {
        expect((await urls.create(space, { name: 'at', url })).url).toBe(url);
      }
      await expect(urls.create(space, { name: 'at', url: 'https://me@example.com/x' })).rejects.toThrow(WebhookValidationError);
    });

    it('refuses to delete a URL that a live listener uses, and allows it once the listener is deleted', async () => {
      const space = freshSpace();
      const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: 'https://in-use.example.com/x' });
      await expect(urls.delete(space, listener.url.id)).rejects.toThrow(WebhookStateError);
      expect((await urls.read(space, listener.url.id)).state).toBe('ACTIVE');
      await listeners.delete(space, listener.id);
      expect((await urls.delete(space, listener.url.id)).state).toBe('DELETING');
    });
  });

  describe('WebhookIdentityService', () => {
    it('creates an identity with a P-256 key pair and a Standard Webhooks secret', async () => {
      const space = freshSpace();
      const identity = await identities.create(space, { name: 'Signing key' });
      expect(identity).toMatchObject({ linkedSpaceId: space, name: 'Signing key', state: 'ACTIVE', version: 1 });
      expect(identity.keyId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const publicKey = createPublicKey({ key: Buffer.from(identity.publicKey, 'base64'), format: 'der', type: 'spki' });
      expect(publicKey.asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });

      const secret = await identities.revealSecret(space, identity.id);
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
    });

    it('never returns private parts from create, read or search', async () => {
      const space = freshSpace();
      const identity = await identities.create(space, { name: 'hidden' });
      const found = [identity, await identities.read(space, identity.id), ...(await identities.search(space, {}))];
      for (const item of found) {
        expect(Object.keys(item)).not.toEqual(expect.arrayContaining(['privateKey']));
        expect(Object.keys(item)).not.toEqual(expect.arrayContaining(['secret']));
        expect(JSON.stringify(item)).not.toContain('whsec_');
      }
    });

    it('stores private key and secret encrypted, and the private key signs for the public key', async () => {
      const space = freshSpace();
      const identity = await identities.create(space, { name: 'sealed' });
      const row = await testApp.dataSource
        .getRepository(WebhookIdentity)
        .createQueryBuilder('i')
        .addSelect(['i.privateKey', 'i.secret'])
        .where('i.id = :id', { id: identity.id })
        .getOneOrFail();
      expect(row.privateKey).toMatch(/^enc:v1:/);
      expect(row.secret).toMatch(/^enc:v1:/);
      expect(row.secret).not.toContain((await identities.revealSecret(space, identity.id)).slice(6));

      const { KeyEncryptionService } = await import('../../lib/signing/key-encryption.service.js');
      const privateKeyDer = testApp.get(KeyEncryptionService).open(row.privateKey!, row.keyId);
      const privateKey = createPrivateKey({ key: Buffer.from(privateKeyDer, 'base64'), format: 'der', type: 'pkcs8' });
      const signature = createSign('sha256').update('payload').sign(privateKey);
      const publicKey = createPublicKey({ key: Buffer.from(identity.publicKey, 'base64'), format: 'der', type: 'spki' });
      expect(createVerify('sha256').update('payload').verify(publicKey, signature)).toBe(true);

      // A tag cut down to 4 bytes is refused, not checked on its 4 bytes alone.
      const [iv, tag, sealed] = row.secret!.slice('enc:v1:'.length).split(':');
      const cutTag = `enc:v1:${iv}:${Buffer.from(tag, 'base64').subarray(0, 4).toString('base64')}:${sealed}`;
      expect(() => testApp.get(KeyEncryptionService).open(cutTag, row.keyId)).toThrow(WebhookConfigurationError);
    });

    it('serves public keys by key id, to anyone', async () => {
      const identity = await identities.create(freshSpace(), { name: 'public' });
      expect(await identities.readPublicKey(identity.keyId)).toEqual({ id: identity.keyId, publicKey: identity.publicKey });
      await expect(identities.readPublicKey('00000000-0000-4000-8000-000000000000')).rejects.toThrow(WebhookNotFoundError);
      await expect(identities.readPublicKey("' OR 1=1 --")).rejects.toThrow(WebhookValidationError);
    });

    it('refuses to change key material and hides identities of other spaces', async () => {
      const space = freshSpace();
      const identity = await identities.create(space, { name: 'fixed' });
      for (const field of ['keyId', 'publicKey', 'privateKey', 'secret']) {
        await expect(identities.update(space, { id: identity.id, version: 1, [field]: 'x' })).rejects.toThrow(
          expect.objectContaining({ field }),
        );
      }
      await expect(identities.revealSecret(freshSpace(), identity.id)).rejects.toThrow(WebhookNotFoundError);
      expect(
        await identities.update(space, { id: identity.id, version: 1, name: 'renamed', state: CreationEntityState.INACTIVE }),
      ).toMatchObject({
        name: 'renamed',
        state: 'INACTIVE',
        version: 2,
      });
    });

    it('refuses to delete an identity that a live listener uses', async () => {
      const space = freshSpace();
      const identity = await identities.create(space, { name: 'used' });
      await listeners.create(space, { name: 'l', entity: 'Order', url: 'https://x.example.com/y', identity: identity.id });
      await expect(identities.delete(space, identity.id)).rejects.toThrow(WebhookStateError);
    });
  });

  it('needs the key encryption key to reveal a secret stored encrypted', async () => {
    const space = freshSpace();
    const identity = await identities.create(space, { name: 'locked' });
    const { KeyEncryptionService } = await import('../../lib/signing/key-encryption.service.js');
    const withoutKey = new KeyEncryptionService({ signing: { keyEncryptionKey: null } } as never);
    const otherKey = new KeyEncryptionService({ signing: { keyEncryptionKey: randomBytes(32) } } as never);
    const sealed = testApp.get(KeyEncryptionService).seal('whsec_abc', identity.keyId);
    expect(() => withoutKey.open(sealed, identity.keyId)).toThrow(WebhookConfigurationError);
    expect(() => otherKey.open(sealed, identity.keyId)).toThrow(WebhookConfigurationError);
    expect(() => testApp.get(KeyEncryptionService).open(sealed, 'another-key-id')).toThrow(WebhookConfigurationError);
  });
});

describe('WebhookIdentityService without a key encryption key', () => {
  it('stores the key material as it is and still never returns it from read', async () => {
    const testApp = await createTestApp('sqlite');
    try {
      const identity = await testApp.get(WebhookIdentityService).create(1, { name: 'plain' });
      const [row] = await testApp.dataSource.query('SELECT secret FROM webhook_identity WHERE id = ?', [identity.id]);
      expect(row.secret).toBe(await testApp.get(WebhookIdentityService).revealSecret(1, identity.id));
      expect(await testApp.get(WebhookIdentityService).read(1, identity.id)).not.toHaveProperty('secret');
    } finally {
      await testApp.close();
    }
  });
});

describeEachOf(selectedDatabases().filter((database) => database !== 'sqlite'))(
  'deleting a URL while a listener is created on it, on %s',
  (database) => {
    let testApp: TestApp;
    beforeAll(async () => {
      testApp = await createTestApp(database);
    });
    afterAll(() => testApp?.close());

    /** Whether another connection of this database waits to lock a URL (MariaDB: runs that locking read, which can only wait here). */
    async function someoneWaitsForALock(): Promise<boolean> {
      const sql =
        database === 'postgres'
          ? `SELECT COUNT(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND query LIKE '%webhook_url%FOR SHARE%'`
          : `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND DB = DATABASE() AND INFO LIKE '%webhook_url%LOCK IN SHARE MODE%'`;
      const [row] = await testApp.dataSource.query(sql);
      return Number(row.n) > 0;
    }

    it('never leaves a live listener on a URL that is being deleted', async () => {
      const space = freshSpace();
      const urls = testApp.get(WebhookUrlService);
      const listeners = testApp.get(WebhookListenerService);
      const url = await urls.create(space, { name: 'u', url: 'https://race.example.com/x' });
      let creating: Promise<unknown> | undefined;
      let created = false;
      // Once the delete has looked for live listeners and writes DELETING, a listener is created on the URL.
      const createMeanwhile: EntitySubscriberInterface = {
        listenTo: () => WebhookUrl,
        beforeUpdate: async (event) => {
          if (creating || (event.entity as Partial<WebhookUrl> | undefined)?.state !== 'DELETING') return;
          creating = listeners.create(space, { name: 'l', entity: 'Order', url: url.id }).then(
            () => (created = true),
            (error: unknown) => error,
          );
          await waitFor(async () => created || (await someoneWaitsForALock()), 'the listener to be created or to wait for the URL', 45_000);
        },
      };
      testApp.dataSource.subscribers.push(createMeanwhile);
      try {
        expect((await urls.delete(space, url.id)).state).toBe('DELETING');
        expect(await creating).toEqual(expect.objectContaining({ field: 'url' }));
        expect(await listeners.count(space)).toBe(0);
      } finally {
        testApp.dataSource.subscribers.splice(testApp.dataSource.subscribers.indexOf(createMeanwhile), 1);
      }
    });

    /**
     * Runs `change` of a URL; once it has written what `isTheChange` looks for, and before it commits,
     * a listener is created by `address`. Resolves to that listener.
     */
    async function listenerCreatedWhile(
      space: number,
      address: string,
      isTheChange: (written: Partial<WebhookUrl>) => boolean,
      change: () => Promise<unknown>,
    ): Promise<WebhookListener> {
      let creating: Promise<WebhookListener> | undefined;
      let created = false;
      const createMeanwhile: EntitySubscriberInterface = {
        listenTo: () => WebhookUrl,
        afterUpdate: async (event) => {
          if (creating || !isTheChange((event.entity ?? {}) as Partial<WebhookUrl>)) return;
          creating = testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: address });
          void creating.then(() => (created = true), noop);
          await waitFor(async () => created || (await someoneWaitsForALock()), 'the listener to be created or to wait for the URL', 45_000);
        },
      };
      testApp.dataSource.subscribers.push(createMeanwhile);
      try {
        await change();
        return await creating!;
      } finally {
        testApp.dataSource.subscribers.splice(testApp.dataSource.subscribers.indexOf(createMeanwhile), 1);
      }
    }

    it.each<[string, (urls: WebhookUrlService, space: number, url: WebhookUrl) => Promise<unknown>]>([
      ['INACTIVE', (urls, space, url) => urls.update(space, { id: url.id, version: url.version, state: 'INACTIVE' })],
      ['DELETING', (urls, space, url) => urls.delete(space, url.id)],
    ])(
      'puts a listener created by address on the other ACTIVE URL of that address when the one it would take becomes %s meanwhile',
      async (state, change) => {
        const space = freshSpace();
        const urls = testApp.get(WebhookUrlService);
        const address = 'https://twice.example.com/hook';
        const first = await urls.create(space, { name: 'first', url: address });
        const second = await urls.create(space, { name: 'second', url: address });
        const listener = await listenerCreatedWhile(
          space,
          address,
          (written) => written.state === state,
          () => change(urls, space, first),
        );
        expect(listener.url.id).toBe(second.id);
        expect(await urls.count(space)).toBe(2);
      },
    );

    it('puts a listener created by address on a URL of that address when the URL it found gets another address meanwhile', async () => {
      const space = freshSpace();
      const urls = testApp.get(WebhookUrlService);
      const before = 'https://before.example.com/hook';
      const after = 'https://after.example.com/hook';
      const url = await urls.create(space, { name: 'u', url: before });
      const listener = await listenerCreatedWhile(
        space,
        before,
        (written) => written.url === after,
        () => urls.update(space, { id: url.id, version: url.version, url: after }),
      );
      expect((await urls.read(space, listener.url.id)).url).toBe(before);
      expect(listener.url.id).not.toBe(url.id);
    });
  },
);

describeEachOf(selectedDatabases().filter((database) => database !== 'sqlite'))(
  "a space's default identity needed by two instances at once, on %s",
  (database) => {
    it('is made once, and both instances sign with it', async () => {
      const first = await createTestApp(database);
      const second = await createTestApp(database, { keepSchema: true });
      try {
        const spaces = Array.from({ length: 20 }, () => freshSpace());
        const signingIdentities = (app: TestApp) =>
          Promise.all(spaces.map(async (space) => (await app.get(DeliveryStore).spaceDefaultKeys(space)).keyId));
        const [ofFirst, ofSecond] = await Promise.all([signingIdentities(first), signingIdentities(second)]);
        expect(ofSecond).toEqual(ofFirst);
        const identities = first.get(WebhookIdentityService);
        const defaults = await Promise.all(spaces.map((space) => identities.count(space)));
        expect(defaults).toEqual(spaces.map(() => 1));
      } finally {
        await second.close();
        await first.close();
      }
    });
  },
);
