import { createPrivateKey, createSecretKey, randomBytes } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { resolveWebhookOptions } from '../../lib/module/webhook-options.validation.js';
import { EcdsaSigningWorker } from '../../lib/signing/ecdsa-signing.worker.js';
import { generateIdentityKeyMaterial } from '../../lib/signing/key-material.js';
import { formatXSignature } from '../../lib/signing/signature-format.js';
import { verifyXSignature } from '../../lib/verify/index.js';

describe('EcdsaSigningWorker', () => {
  const keys = generateIdentityKeyMaterial();
  const privateKey = createPrivateKey({ key: Buffer.from(keys.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
  const bodies = Array.from({ length: 40 }, (_, i) => JSON.stringify({ eventId: i, state: i % 2 ? 'CONFIRMED' : 'SHIPPED' }));
  let signer: EcdsaSigningWorker;

  beforeEach(() => {
    signer = new EcdsaSigningWorker(resolveWebhookOptions({}));
  });
  afterEach(() => signer.onApplicationShutdown());

  it('signs each body in its place, batches running side by side', async () => {
    const [first, second] = await Promise.all([signer.sign(privateKey, bodies), signer.sign(privateKey, bodies.slice(0, 3).reverse())]);

    expect(first).toHaveLength(bodies.length);
    first.forEach((signature, i) =>
      expect(verifyXSignature(formatXSignature(keys.keyId, signature), bodies[i], keys.publicKey)).toBe(true),
    );
    expect(verifyXSignature(formatXSignature(keys.keyId, first[0]), bodies[1], keys.publicKey)).toBe(false);
    expect(second.map((signature, i) => verifyXSignature(formatXSignature(keys.keyId, signature), bodies[2 - i], keys.publicKey))).toEqual([
      true,
      true,
      true,
    ]);
  });

  it('rejects a batch whose key cannot sign, and signs the next one', async () => {
    await expect(signer.sign(createSecretKey(randomBytes(32)), bodies)).rejects.toThrow(Error);

    const [signature] = await signer.sign(privateKey, [bodies[0]]);
    expect(verifyXSignature(formatXSignature(keys.keyId, signature), bodies[0], keys.publicKey)).toBe(true);
  });

  it('fails the batches of a thread that ends, signs the next batch in a new one, and refuses batches after three such ends', async () => {
    const threadOf = () => (signer as unknown as { worker: Worker | null }).worker;
    const longBatch = Array.from({ length: 2_000 }, () => bodies[0]);
    for (let end = 1; end <= 3; end++) {
      const waiting = signer.sign(privateKey, longBatch);
      const thread = threadOf();
      expect(thread).not.toBeNull();
      await thread!.terminate();
      await expect(waiting).rejects.toThrow('The ECDSA signing thread stopped');
      if (end === 3) break;
      const [signature] = await signer.sign(privateKey, [bodies[1]]);
      expect(threadOf()).not.toBe(thread);
      expect(verifyXSignature(formatXSignature(keys.keyId, signature), bodies[1], keys.publicKey)).toBe(true);
    }

    await expect(signer.sign(privateKey, bodies)).rejects.toThrow('The ECDSA signing thread failed 3 times');
    expect(threadOf()).toBeNull();
  });

  it('fails the batches still waiting when it shuts down, and every batch after', async () => {
    const waiting = signer.sign(
      privateKey,
      Array.from({ length: 2_000 }, () => bodies[0]),
    );
    await signer.onApplicationShutdown();

    await expect(waiting).rejects.toThrow('The ECDSA signing thread has shut down');
    await expect(signer.sign(privateKey, bodies)).rejects.toThrow('The ECDSA signing thread has shut down');
  });
});
