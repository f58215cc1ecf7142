import { EncryptionUtil } from 'postfinancecheckout';
import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Webhook } from 'standardwebhooks';
import {
  WebhookDeliveryService,
  WebhookEntity,
  WebhookEvent,
  WebhookIdentityService,
  WebhookListenerService,
  WebhookSpace,
  WebhookState,
  WebhookTransactionEndedError,
  type WebhookModuleOptions,
} from '../../lib/index.js';
import { formatWebhookTimestamp } from '../../lib/delivery/payload.js';
import { EcdsaSigningWorker } from '../../lib/signing/ecdsa-signing.worker.js';
import { verifyStandardWebhook, verifyXSignature } from '../../lib/verify/index.js';
import { describeOnlyOn, selectedDatabases, type TestDatabase } from '../src/databases.js';
import { Order, OrderState, Parcel, ParcelState } from '../src/order.entity.js';
import { answer, answerAfter, TestReceiver, waitFor } from '../src/receiver.js';
import { freshSpace } from '../src/spaces.js';
import { StatementCounter } from '../src/statement-counter.js';
import { createTestApp, HOST_ENTITIES, succeededDeliveries, type TestApp } from '../src/test-app.js';

const FAST: WebhookModuleOptions = {
  security: { allowPrivateNetworks: true },
  delivery: { pollIntervalMs: 100, timeoutMs: 2_000, retrySchedule: [50, 50, 50] },
  worker: { enabled: true },
};

describe.each(selectedDatabases())('delivery on %s', (database) => {
  let testApp: TestApp;
  let receiver: TestReceiver;

  beforeAll(async () => {
    receiver = await new TestReceiver().start();
    testApp = await createTestApp(database, { webhook: FAST });
  });
  afterAll(async () => {
    await testApp?.close();
    await receiver?.stop();
  });

  it('posts exactly the documented body, signed both ways, verifiable by receivers', async () => {
    const space = freshSpace();
    const identity = await testApp.get(WebhookIdentityService).create(space, { name: 'signing' });
    const listener = await testApp
      .get(WebhookListenerService)
      .create(space, { name: 'l', entity: 'Order', url: receiver.url(`/signed/${space}`), identity: identity.id });
    const order = await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });

    const [request] = await waitFor(
      () => receiver.to(`/signed/${space}`).length === 1 && receiver.to(`/signed/${space}`),
      'the signed request',
    );
    const body = JSON.parse(request.rawBody.toString('utf8'));
    expect(Object.keys(body)).toEqual([
      'eventId',
      'entityId',
      'listenerEntityId',
      'listenerEntityTechnicalName',
      'spaceId',
      'webhookListenerId',
      'timestamp',
      'state',
    ]);
    expect(body).toEqual({
      eventId: expect.any(Number),
      entityId: order.id,
      listenerEntityId: 1001,
      listenerEntityTechnicalName: 'Order',
      spaceId: space,
      webhookListenerId: listener.id,
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/),
      state: 'CONFIRMED',
    });
    expect(Math.abs(Date.parse(body.timestamp.replace('+0000', 'Z')) - Date.now())).toBeLessThan(60_000);
    expect(request.headers['content-type']).toBe('application/json');

    const xSignature = String(request.headers['x-signature']);
    expect(xSignature).toMatch(new RegExp(`^algorithm=SHA256withECDSA, keyId=${identity.keyId}, signature=[A-Za-z0-9+/]+=*$`));
    expect(verifyXSignature(xSignature, request.rawBody, identity.publicKey)).toBe(true);
    const signature = xSignature.split('signature=')[1];
    expect(EncryptionUtil.isContentValid(request.rawBody.toString('utf8'), signature, identity.publicKey)).toBe(true);
    expect(
      EncryptionUtil.isContentValid(request.rawBody.toString('utf8').replace('CONFIRMED', 'SHIPPED'), signature, identity.publicKey),
    ).toBe(false);

    const secret = await testApp.get(WebhookIdentityService).revealSecret(space, identity.id);
    const headers = {
      'webhook-id': String(request.headers['webhook-id']),
      'webhook-timestamp': String(request.headers['webhook-timestamp']),
      'webhook-signature': String(request.headers['webhook-signature']),
    };
    expect(() => new Webhook(secret).verify(request.rawBody.toString('utf8'), headers)).not.toThrow();
    expect(verifyStandardWebhook(request.headers, request.rawBody, secret)).toBe(true);
    expect(verifyStandardWebhook(request.headers, Buffer.concat([request.rawBody, Buffer.from(' ')]), secret)).toBe(false);
  });

  it("stamps the payload with the time the change was recorded, not with the event's date without time zone", async () => {
    const space = freshSpace();
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(`/stamped/${space}`) });
    const q = (name: string) => testApp.dataSource.driver.escape(name);
    const events = testApp.dataSource.getRepository(WebhookEvent);
    // createdOn moved to another day in the change's own transaction; for the second order occurredAt is
    // emptied too, as in an event recorded before that column existed.
    const saveWithCreatedOnMoved = (emptyOccurredAt: boolean) =>
      testApp.dataSource.transaction(async (manager) => {
        const order = await manager.save(Order, { tenantId: space, state: OrderState.CONFIRMED });
        await manager.query(
          `UPDATE webhook_event SET ${q('createdOn')} = '2001-02-03 04:05:06'${emptyOccurredAt ? `, ${q('occurredAt')} = NULL` : ''}` +
            ` WHERE ${q('linkedSpaceId')} = ${space} AND ${q('entityId')} = '${order.id}'`,
        );
        return order;
      });
    const recorded = await saveWithCreatedOnMoved(false);
    const older = await saveWithCreatedOnMoved(true);

    const requests = await waitFor(() => receiver.to(`/stamped/${space}`).length === 2 && receiver.to(`/stamped/${space}`), 'both');
    const timestampOf = (order: Order) =>
      requests.map((request) => JSON.parse(request.rawBody.toString('utf8'))).find((body) => body.entityId === order.id).timestamp;
    const [recordedEvent, olderEvent] = [
      await events.findOneByOrFail({ entityId: String(recorded.id) }),
      await events.findOneByOrFail({ entityId: String(older.id) }),
    ];
    expect(recordedEvent.occurredAt).toEqual(expect.any(Number));
    expect(timestampOf(recorded)).toBe(formatWebhookTimestamp(recordedEvent.occurredAt!));
    expect(timestampOf(older)).toBe(formatWebhookTimestamp(olderEvent.createdOn));
    expect(timestampOf(older)).not.toBe(timestampOf(recorded));
  });

  it('signs with the space default identity when a listener names none, and sends no state or signature when disabled', async () => {
    const space = freshSpace();
    await testApp.get(WebhookListenerService).create(space, { name: 'default', entity: 'Parcel', url: receiver.url(`/default/${space}`) });
    await testApp
      .get(WebhookListenerService)
      .create(space, { name: 'plain', entity: 'Parcel', url: receiver.url(`/plain/${space}`), enablePayloadSignatureAndState: false });
    await testApp.dataSource.getRepository(Parcel).save({ code: `p-${space}`, shop: space, state: ParcelState.PACKED });

    const [signed] = await waitFor(
      () => receiver.to(`/default/${space}`).length === 1 && receiver.to(`/default/${space}`),
      'the default-signed request',
    );
    const [plain] = await waitFor(
      () => receiver.to(`/plain/${space}`).length === 1 && receiver.to(`/plain/${space}`),
      'the unsigned request',
    );
    const [identity] = await testApp.get(WebhookIdentityService).search(space, {});
    expect(identity).toMatchObject({ name: 'Default', spaceDefault: true });
    expect(verifyXSignature(signed.headers['x-signature'], signed.rawBody, identity.publicKey)).toBe(true);
    expect(JSON.parse(signed.rawBody.toString()).entityId).toBe(`p-${space}`);

    const plainBody = JSON.parse(plain.rawBody.toString());
    expect(plainBody).not.toHaveProperty('state');
    expect(Object.keys(plainBody)).toHaveLength(7);
    expect(plain.headers['x-signature']).toBeUndefined();
    expect(plain.headers['webhook-signature']).toBeUndefined();
  });
  it('signs every request of a claim larger than a batch of the signing thread with its own x-signature', async () => {
    const space = freshSpace();
    const path = `/many/${space}`;
    const identity = await testApp.get(WebhookIdentityService).create(space, { name: 'signing' });
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path), identity: identity.id });
    const signingThread = testApp.get(EcdsaSigningWorker);
    const signAhead = signingThread.sign;
    const batchSizes: number[] = [];
    signingThread.sign = (key, bodies) => {
      batchSizes.push(bodies.length);
      return signAhead.call(signingThread, key, bodies);
    };
    try {
      // One transaction, taken by claims of up to 100 (the default batch size).
      await testApp.dataSource.transaction((manager) =>
        manager.getRepository(Order).save(Array.from({ length: 150 }, () => ({ tenantId: space, state: OrderState.CONFIRMED }))),
      );

      const requests = await waitFor(() => receiver.to(path).length === 150 && receiver.to(path), 'the 150 requests');
      for (const request of requests)
        expect(verifyXSignature(request.headers['x-signature'], request.rawBody, identity.publicKey)).toBe(true);
      expect(new Set(requests.map((request) => JSON.parse(request.rawBody.toString()).entityId)).size).toBe(150);
      // Signed ahead, in batches of at most 64: not by the fallback, whose signatures would verify as well.
      expect(batchSizes.reduce((sum, size) => sum + size, 0)).toBe(150);
      expect(Math.max(...batchSizes)).toBeLessThanOrEqual(64);
    } finally {
      signingThread.sign = signAhead;
    }
  });
});

/** Registered as wallee registers its transactions: an id beyond 32 bits, and a space kept in a bigint column. */
@Entity('test_payment')
@WebhookEntity({ name: 'Transaction', id: 1472041829003, states: ['AUTHORIZED', 'FULFILL'] })
class Payment {
  @PrimaryGeneratedColumn()
  id: number;

  @WebhookSpace()
  @Column({ type: 'bigint' })
  spaceId: number;

  @WebhookState()
  @Column({ type: 'varchar', length: 20 })
  state: string;
}

describe.each(selectedDatabases())('an entity registered as wallee registers its own, on %s', (database) => {
  it('delivers its inserts and updates with its 64-bit listenerEntityId, its space read from a bigint column', async () => {
    const receiver = await new TestReceiver().start();
    const testApp = await createTestApp(database, { webhook: FAST, hostEntities: [...HOST_ENTITIES, Payment] });
    try {
      const space = freshSpace();
      receiver.script(`/transactions/${space}`, answer(200));
      await testApp
        .get(WebhookListenerService)
        .create(space, { name: 'l', entity: 'Transaction', url: receiver.url(`/transactions/${space}`) });
      const payments = testApp.dataSource.getRepository(Payment);
      const payment = await payments.save({ spaceId: space, state: 'AUTHORIZED' });
      // Loaded back, the space is what the driver makes of a bigint column.
      const loaded = await payments.findOneByOrFail({ id: payment.id });
      await payments.save({ ...loaded, state: 'FULFILL' });

      const requests = await waitFor(
        () => receiver.to(`/transactions/${space}`).length === 2 && receiver.to(`/transactions/${space}`),
        'the insert and the update',
      );
      const bodies = requests.map((request) => JSON.parse(request.rawBody.toString('utf8')));
      expect(
        bodies
          .map(({ listenerEntityId, spaceId, state }) => ({ listenerEntityId, spaceId, state }))
          .sort((a, b) => a.state.localeCompare(b.state)),
      ).toEqual([
        { listenerEntityId: 1472041829003, spaceId: space, state: 'AUTHORIZED' },
        { listenerEntityId: 1472041829003, spaceId: space, state: 'FULFILL' },
      ]);
    } finally {
      await testApp.close();
      await receiver.stop();
    }
  });
});

describe.each(selectedDatabases())('x-signature without the signing thread on %s', (database) => {
  it('signs each request as it starts when the signing thread cannot sign ahead', async () => {
    const receiver = await new TestReceiver().start();
    const testApp = await createTestApp(database, { webhook: FAST });
    try {
      testApp.get(EcdsaSigningWorker).sign = () => Promise.reject(new Error('signing thread gone'));
      const space = freshSpace();
      const path = `/unprepared/${space}`;
      const identity = await testApp.get(WebhookIdentityService).create(space, { name: 'signing' });
      await testApp
        .get(WebhookListenerService)
        .create(space, { name: 'l', entity: 'Order', url: receiver.url(path), identity: identity.id });
      await testApp.dataSource.transaction((manager) =>
        manager.getRepository(Order).save(Array.from({ length: 3 }, () => ({ tenantId: space, state: OrderState.CONFIRMED }))),
      );

      const requests = await waitFor(() => receiver.to(path).length === 3 && receiver.to(path), 'the 3 requests');
      const secret = await testApp.get(WebhookIdentityService).revealSecret(space, identity.id);
      for (const request of requests) {
        expect(verifyXSignature(request.headers['x-signature'], request.rawBody, identity.publicKey)).toBe(true);
        expect(verifyStandardWebhook(request.headers, request.rawBody, secret)).toBe(true);
      }
    } finally {
      await testApp.close();
      await receiver.stop();
    }
  });
});

describe.each(selectedDatabases())('signing time on %s', (database) => {
  it.each([[['standard-webhooks']], [['x-signature', 'standard-webhooks']]] as const)(
    'signs a request that waited for its URL with the time it is sent, not the time it was claimed (schemes %j)',
    async (schemes) => {
      const receiver = await new TestReceiver().start();
      // A timeout above the 2.1 s the first answer takes, so that the second request waits for that answer.
      const webhook = { ...FAST, delivery: { ...FAST.delivery, timeoutMs: 5_000 }, signing: { schemes: [...schemes] } };
      const testApp = await createTestApp(database, { webhook });
      try {
        const space = freshSpace();
        const path = `/waited/${space}`;
        // A URL gets one request at a time until it answers: the second waits the 2.1 s the first takes.
        receiver.script(path, answerAfter(2_100), answer(200));
        const identities = testApp.get(WebhookIdentityService);
        const identity = await identities.create(space, { name: 'signing' });
        await testApp
          .get(WebhookListenerService)
          .create(space, { name: 'l', entity: 'Order', url: receiver.url(path), identity: identity.id });
        // One transaction: one claim takes both.
        await testApp.dataSource.transaction((manager) =>
          manager.getRepository(Order).save([OrderState.CONFIRMED, OrderState.CONFIRMED].map((state) => ({ tenantId: space, state }))),
        );

        const [first, second] = await waitFor(() => receiver.to(path).length === 2 && receiver.to(path), 'both requests');
        const timestampOf = (request: typeof first) => Number(request.headers['webhook-timestamp']);
        expect(second.receivedAt - first.receivedAt).toBeGreaterThanOrEqual(2_050);
        expect(timestampOf(second) - timestampOf(first)).toBeGreaterThanOrEqual(2);
        expect(Math.floor(second.receivedAt / 1000) - timestampOf(second)).toBeLessThanOrEqual(1);
        const secret = await identities.revealSecret(space, identity.id);
        for (const request of [first, second]) {
          expect(verifyStandardWebhook(request.headers, request.rawBody, secret)).toBe(true);
          if ((schemes as readonly string[]).includes('x-signature'))
            expect(verifyXSignature(request.headers['x-signature'], request.rawBody, identity.publicKey)).toBe(true);
        }
      } finally {
        await testApp.close();
        await receiver.stop();
      }
    },
  );
});

describe.each(selectedDatabases())('one signature scheme on %s', (database) => {
  it.each([['x-signature'], ['standard-webhooks']] as const)(
    'sends only the %s signature, with the webhook-id and webhook-timestamp of every request',
    async (scheme) => {
      const receiver = await new TestReceiver().start();
      const testApp = await createTestApp(database, { webhook: { ...FAST, signing: { schemes: [scheme] } } });
      try {
        const space = freshSpace();
        const identities = testApp.get(WebhookIdentityService);
        const identity = await identities.create(space, { name: 'signing' });
        await testApp
          .get(WebhookListenerService)
          .create(space, { name: 'l', entity: 'Order', url: receiver.url(`/one/${space}`), identity: identity.id });
        await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });

        const [request] = await waitFor(() => receiver.to(`/one/${space}`).length === 1 && receiver.to(`/one/${space}`), 'the request');
        const deliveryId = (await testApp.get(WebhookDeliveryService).searchDeliveries(space, {}))[0].id;
        expect(request.headers['webhook-id']).toBe(`msg_${deliveryId}`);
        expect(Math.abs(Number(request.headers['webhook-timestamp']) * 1000 - Date.now())).toBeLessThan(60_000);
        const secret = await identities.revealSecret(space, identity.id);
        if (scheme === 'x-signature') {
          expect(verifyXSignature(request.headers['x-signature'], request.rawBody, identity.publicKey)).toBe(true);
          expect(request.headers['webhook-signature']).toBeUndefined();
        } else {
          expect(verifyStandardWebhook(request.headers, request.rawBody, secret)).toBe(true);
          expect(request.headers['x-signature']).toBeUndefined();
        }
      } finally {
        await testApp.close();
        await receiver.stop();
      }
    },
  );
});

/**
 * Boots a delivering app whose TypeORM statements `statements` records, with one listener in a fresh
 * space; `deliverBatch(size)` commits `size` saves in one transaction and waits until all are delivered.
 */
async function withStatementLog(
  database: TestDatabase,
  webhook: WebhookModuleOptions,
  test: (statements: StatementCounter, deliverBatch: (size: number) => Promise<void>) => Promise<void>,
): Promise<void> {
  const statements = new StatementCounter();
  const receiver = await new TestReceiver().start();
  const testApp = await createTestApp(database, { webhook, typeormLogger: statements });
  try {
    const space = freshSpace();
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(`/logged/${space}`) });
    let delivered = 0;
    await test(statements, async (size) => {
      await testApp.dataSource.transaction(async (manager) => {
        for (let i = 0; i < size; i++) await manager.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });
      });
      delivered += size;
      await waitFor(async () => (await succeededDeliveries(testApp, space)) === delivered, `${delivered} deliveries`);
    });
  } finally {
    await testApp.close();
    await receiver.stop();
  }
}

describeOnlyOn('postgres')('delivery round trips on postgres', () => {
  it('claims without a transaction of its own: the planner settings travel with the read of the candidates', async () => {
    await withStatementLog('postgres', FAST, async (statements, deliverBatch) => {
      await deliverBatch(1); // creates the space's default identity, in a transaction
      const sent = await statements.count(() => deliverBatch(1));

      const claimReads = sent.filter((sql) => /set_config\('enable_seqscan'/.test(sql));
      expect(claimReads.length).toBeGreaterThan(0);
      expect(claimReads.every((sql) => /ORDER BY .* LIMIT \d+$/.test(sql))).toBe(true);
      // The save's own transaction is the only one.
      expect(sent.filter((sql) => /^(START TRANSACTION|BEGIN|COMMIT)/i.test(sql))).toEqual(['START TRANSACTION', 'COMMIT']);
    });
  });
});

describeOnlyOn('sqlite')('delivery statements on sqlite', () => {
  it("runs claims, results and the capture's writes on the connection itself, and sends TypeORM the same statement texts whatever the batch", async () => {
    const quietScheduler = { lifecycleIntervalMs: 3_600_000, purgeIntervalMs: 3_600_000, retentionIntervalMs: 3_600_000 };
    await withStatementLog('sqlite', { ...FAST, scheduler: quietScheduler }, async (statements, deliverBatch) => {
      await deliverBatch(1); // creates the space's default identity
      const seen = new Set(
        await statements.count(async () => [2, 3, 5].reduce((done, size) => done.then(() => deliverBatch(size)), Promise.resolve())),
      );
      const later = await statements.count(() => deliverBatch(7));

      // Leases, attempts and results, and the capture's event and deliveries, go to better-sqlite3 directly (SynchronousSqlite).
      expect(later.filter((sql) => /^UPDATE|^INSERT (OR FAIL )?INTO "webhook_/.test(sql))).toEqual([]);
      expect(later.some((sql) => sql.startsWith('INSERT INTO "test_order"'))).toBe(true);
      expect(later.filter((sql) => !seen.has(sql))).toEqual([]);
    });
  });
});

describeOnlyOn('sqlite')('a full disk on sqlite', () => {
  // SQLite's page limit stands in for a full disk: SQLITE_FULL, in whichever statement needs a new page,
  // which for many of them makes SQLite roll back the whole transaction by itself.
  it.each([1, 10])(
    'fails saves while the file cannot grow, then saves and delivers again once it can (%i listeners)',
    async (listenerCount) => {
      const receiver = await new TestReceiver().start();
      const testApp = await createTestApp('sqlite', { webhook: FAST });
      try {
        const space = freshSpace();
        const listeners = testApp.get(WebhookListenerService);
        for (let i = 0; i < listenerCount; i++) {
          await listeners.create(space, { name: `l${i}`, entity: 'Order', url: receiver.url(`/full/${space}/${i}`) });
        }
        const file = (testApp.dataSource.driver as unknown as { databaseConnection: SqliteConnection }).databaseConnection;
        const orders = testApp.dataSource.getRepository(Order);
        const saved: number[] = [];
        const saveOrder = async () => saved.push((await orders.save({ tenantId: space, state: OrderState.CONFIRMED })).id);

        file.pragma(`max_page_count = ${file.pragma('page_count', { simple: true })}`);
        let failed = 0;
        for (let i = 0; i < 300; i++) await saveOrder().catch(() => failed++);
        file.pragma('max_page_count = 1073741823');
        for (let i = 0; i < 5; i++) await saveOrder();

        expect(failed).toBeGreaterThan(0);
        // No order of a failed save is left behind, and every saved one reaches every listener.
        const stored = await orders.find({ where: { tenantId: space }, select: { id: true } });
        expect(stored.map((order) => order.id).sort((a, b) => a - b)).toEqual([...saved].sort((a, b) => a - b));
        const deliveredTo = (listener: number) =>
          new Set(receiver.to(`/full/${space}/${listener}`).map((request) => JSON.parse(request.rawBody.toString('utf8')).entityId));
        const allDelivered = () =>
          Array.from({ length: listenerCount }, (_, listener) => deliveredTo(listener)).every((ids) => saved.every((id) => ids.has(id)));
        await waitFor(allDelivered, `every saved order delivered to its ${listenerCount} listener(s)`);
      } finally {
        await testApp.close();
        await receiver.stop();
      }
    },
    60_000,
  );
  it('does not commit the rest of a transaction that SQLite rolled back whole from inside a savepoint', async () => {
    const testApp = await createTestApp('sqlite', { webhook: FAST });
    try {
      const space = freshSpace();
      await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: 'https://example.com/hook' });
      const file = (testApp.dataSource.driver as unknown as { databaseConnection: SqliteConnection }).databaseConnection;
      const order = () => ({ tenantId: space, state: OrderState.CONFIRMED });

      const committed = testApp.dataSource.transaction(async (manager) => {
        await manager.save(Order, order());
        file.pragma(`max_page_count = ${file.pragma('page_count', { simple: true })}`);
        // The host gives up on the nested part and goes on with the rest of its transaction.
        await manager
          .transaction(async (nested) => {
            for (let i = 0; i < 300; i++) await nested.save(Order, order());
          })
          .catch(() => undefined);
        file.pragma('max_page_count = 1073741823');
        await manager.save(Order, order());
      });

      await expect(committed).rejects.toBeInstanceOf(WebhookTransactionEndedError);
      expect(await testApp.dataSource.getRepository(Order).countBy({ tenantId: space })).toBe(0);
      expect(await testApp.dataSource.getRepository(WebhookEvent).countBy({ linkedSpaceId: space })).toBe(0);
      await testApp.dataSource.getRepository(Order).save(order());
      expect(await testApp.dataSource.getRepository(WebhookEvent).countBy({ linkedSpaceId: space })).toBe(1);
    } finally {
      await testApp.close();
    }
  });
});

interface SqliteConnection {
  pragma(source: string, options?: { simple: boolean }): unknown;
}
