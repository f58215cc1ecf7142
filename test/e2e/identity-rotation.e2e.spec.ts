import {
  WebhookIdentityService,
  WebhookListenerService,
  WebhookNotFoundError,
  WebhookStateError,
  type WebhookModuleOptions,
} from '../../lib/index.js';
import { verifyStandardWebhook, verifyXSignature } from '../../lib/verify/index.js';
import { selectedDatabases } from '../src/databases.js';
import { Order, OrderState } from '../src/order.entity.js';
import { DeliveryStore } from '../../lib/delivery/delivery.store.js';
import { answer, answerAfter, TestReceiver, waitFor, type ReceivedRequest } from '../src/receiver.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, type TestApp } from '../src/test-app.js';

const WITH_GRACE: WebhookModuleOptions = {
  security: { allowPrivateNetworks: true },
  delivery: { pollIntervalMs: 100, timeoutMs: 2_000 },
  signing: { keyEncryptionKey: 'a'.repeat(64), rotationGraceMs: 3_600_000 },
  worker: { enabled: true },
};

/** A request signed after a rotation in its grace period: the new key only in `x-signature`, both secrets in `webhook-signature`. */
function expectSignedAsRotated(
  request: ReceivedRequest,
  keys: { before: { publicKey: string }; after: { keyId: string; publicKey: string }; oldSecret: string; newSecret: string },
): void {
  const xSignature = String(request.headers['x-signature']);
  expect(xSignature).toContain(`keyId=${keys.after.keyId}`);
  expect(verifyXSignature(xSignature, request.rawBody, keys.after.publicKey)).toBe(true);
  expect(verifyXSignature(xSignature, request.rawBody, keys.before.publicKey)).toBe(false);
  expect(String(request.headers['webhook-signature']).split(' ')).toHaveLength(2);
  // A receiver that still has the old secret and one that already has the new one both accept it.
  expect(verifyStandardWebhook(request.headers, request.rawBody, keys.oldSecret)).toBe(true);
  expect(verifyStandardWebhook(request.headers, request.rawBody, keys.newSecret)).toBe(true);
}

describe.each(selectedDatabases())('identity rotation on %s', (database) => {
  let testApp: TestApp;
  let receiver: TestReceiver;
  let identities: WebhookIdentityService;

  beforeAll(async () => {
    receiver = await new TestReceiver().start();
    testApp = await createTestApp(database, { webhook: WITH_GRACE });
    identities = testApp.get(WebhookIdentityService);
  });
  afterAll(async () => {
    await testApp?.close();
    await receiver?.stop();
  });

  async function deliveredAfterSave(space: number, path: string, count: number): Promise<ReceivedRequest> {
    await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });
    const requests = await waitFor(() => receiver.to(path).length === count && receiver.to(path), `request ${count} to ${path}`);
    return requests[count - 1];
  }

  it('signs with the new key and, during the grace period, with the old secret too', async () => {
    const space = freshSpace();
    const before = await identities.create(space, { name: 'signing' });
    const oldSecret = await identities.revealSecret(space, before.id);
    const path = `/rotation/${space}`;
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path), identity: before.id });
    const first = await deliveredAfterSave(space, path, 1);
    expect(String(first.headers['webhook-signature']).split(' ')).toHaveLength(1);

    const after = await identities.rotate(space, before.id);
    expect(after.keyId).not.toBe(before.keyId);
    expect(after.publicKey).not.toBe(before.publicKey);
    expect(after.version).toBe(before.version + 1);
    const newSecret = await identities.revealSecret(space, before.id);
    expect(newSecret).not.toBe(oldSecret);
    expect(await identities.readPublicKey(before.keyId)).toEqual({ id: before.keyId, publicKey: before.publicKey });
    expect(await identities.readPublicKey(after.keyId)).toEqual({ id: after.keyId, publicKey: after.publicKey });

    const second = await deliveredAfterSave(space, path, 2);
    expectSignedAsRotated(second, { before, after, oldSecret, newSecret });
  });

  it('signs a delivery claimed before the rotation and signed again as it starts with the new key and both secrets', async () => {
    const space = freshSpace();
    const before = await identities.create(space, { name: 'signing' });
    const oldSecret = await identities.revealSecret(space, before.id);
    const path = `/claimed-before-rotation/${space}`;
    // A URL gets one request at a time until it answers: the second, claimed with the first, waits
    // the 1.5 s the first takes, and is then signed again as it starts.
    receiver.script(path, answerAfter(1_500), answer(200));
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path), identity: before.id });
    await testApp.dataSource.transaction((manager) =>
      manager.getRepository(Order).save([1, 2].map(() => ({ tenantId: space, state: OrderState.CONFIRMED }))),
    );
    await waitFor(() => receiver.to(path).length === 1, 'the first request');
    const after = await identities.rotate(space, before.id);
    const newSecret = await identities.revealSecret(space, before.id);

    const [, second] = await waitFor(() => receiver.to(path).length === 2 && receiver.to(path), 'the second request');
    expectSignedAsRotated(second, { before, after, oldSecret, newSecret });
  });

  it('reads the keys of a delivery claimed with a key that a rotation has retired since: the identity as it is now', async () => {
    const space = freshSpace();
    const before = await identities.create(space, { name: 'signing' });
    const after = await identities.rotate(space, before.id);
    const keys = await testApp.get(DeliveryStore).identityKeys(before.keyId);
    expect(keys.keyId).toBe(after.keyId);
    expect(keys.retiredSecrets?.map((retired) => retired.keyId)).toEqual([before.keyId]);
  });

  it("signs a space's next delivery with the new key once its default identity is rotated", async () => {
    const space = freshSpace();
    const path = `/default-rotation/${space}`;
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
    const first = await deliveredAfterSave(space, path, 1);
    const [spaceDefault] = await identities.search(space, {});
    expect(spaceDefault.spaceDefault).toBe(true);
    expect(String(first.headers['x-signature'])).toContain(`keyId=${spaceDefault.keyId}`);

    const rotated = await identities.rotate(space, spaceDefault.id);
    const second = await deliveredAfterSave(space, path, 2);
    expect(String(second.headers['x-signature'])).toContain(`keyId=${rotated.keyId}`);
    expect(verifyXSignature(String(second.headers['x-signature']), second.rawBody, rotated.publicKey)).toBe(true);
    expect(verifyStandardWebhook(second.headers, second.rawBody, await identities.revealSecret(space, spaceDefault.id))).toBe(true);
  });

  it("keeps signing with a space's default identity that is deactivated, and refuses to delete it while listeners rely on it", async () => {
    const space = freshSpace();
    const path = `/default-kept/${space}`;
    const listeners = testApp.get(WebhookListenerService);
    const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
    await deliveredAfterSave(space, path, 1);
    const [spaceDefault] = await identities.search(space, {});

    await expect(identities.delete(space, spaceDefault.id)).rejects.toThrow(WebhookStateError);
    const inactive = await identities.update(space, { id: spaceDefault.id, version: spaceDefault.version, state: 'INACTIVE' });
    const second = await deliveredAfterSave(space, path, 2);
    expect(String(second.headers['x-signature'])).toContain(`keyId=${spaceDefault.keyId}`);
    expect(await identities.count(space)).toBe(1);

    await listeners.delete(space, listener.id);
    expect(await identities.delete(space, inactive.id)).toMatchObject({ state: 'DELETING' });
  });

  it('refuses to rotate an identity of another space, an unknown one and a deleted one', async () => {
    const space = freshSpace();
    const identity = await identities.create(space, { name: 'signing' });
    await expect(identities.rotate(freshSpace(), identity.id)).rejects.toThrow(WebhookNotFoundError);
    await expect(identities.rotate(space, 2_000_000_000)).rejects.toThrow(WebhookNotFoundError);
    await identities.delete(space, identity.id);
    await expect(identities.rotate(space, identity.id)).rejects.toThrow(WebhookStateError);
    expect((await identities.read(space, identity.id)).keyId).toBe(identity.keyId);
  });
});

describe.each(selectedDatabases())('identity rotation without a grace period on %s', (database) => {
  let testApp: TestApp;
  let receiver: TestReceiver;

  beforeAll(async () => {
    receiver = await new TestReceiver().start();
    testApp = await createTestApp(database, { webhook: { ...WITH_GRACE, signing: { rotationGraceMs: 0 } } });
  });
  afterAll(async () => {
    await testApp?.close();
    await receiver?.stop();
  });

  it('stops the old secret at once with rotationGraceMs 0', async () => {
    const space = freshSpace();
    const identities = testApp.get(WebhookIdentityService);
    const identity = await identities.create(space, { name: 'signing' });
    const oldSecret = await identities.revealSecret(space, identity.id);
    await identities.rotate(space, identity.id);
    const path = `/no-grace/${space}`;
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path), identity: identity.id });
    await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });
    const [request] = await waitFor(() => receiver.to(path).length === 1 && receiver.to(path), 'the request');
    expect(String(request.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(verifyStandardWebhook(request.headers, request.rawBody, oldSecret)).toBe(false);
    expect(verifyStandardWebhook(request.headers, request.rawBody, await identities.revealSecret(space, identity.id))).toBe(true);
  });
});
