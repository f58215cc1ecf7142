import { DefaultNamingStrategy, type NamingStrategyInterface } from 'typeorm';
import { WebhookDeliveryService, WebhookListenerService, WebhookNotFoundError, WebhookUrlService } from '../../lib/index.js';
import { WebhookMaintenance } from '../../lib/scheduling/webhook-maintenance.service.js';
import { connectionOptions, selectedDatabases } from '../src/databases.js';
import { Order, OrderState } from '../src/order.entity.js';
import { answer, TestReceiver, waitFor } from '../src/receiver.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, type TestApp } from '../src/test-app.js';

const HOUR = 3_600_000;

/** Column names in snake_case, as many hosts configure TypeORM. */
class SnakeCaseNaming extends DefaultNamingStrategy implements NamingStrategyInterface {
  override columnName(propertyName: string, customName: string | undefined, prefixes: string[]): string {
    return customName ?? snakeCase([...prefixes, propertyName].join('_'));
  }
  override joinColumnName(relationName: string, referencedColumnName: string): string {
    return snakeCase(`${relationName}_${referencedColumnName}`);
  }
}

function snakeCase(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

describe.each(selectedDatabases())('a host with a snake_case naming strategy on %s', (database) => {
  let testApp: TestApp;
  let receiver: TestReceiver;

  beforeAll(async () => {
    receiver = await new TestReceiver().start();
    testApp = await createTestApp(database, {
      connection: { ...connectionOptions(database), namingStrategy: new SnakeCaseNaming() },
      webhook: {
        security: { allowPrivateNetworks: true },
        delivery: { pollIntervalMs: 100, retrySchedule: [50, 50] },
        worker: { enabled: true },
        // The jobs are run by hand below.
        scheduler: { lifecycleIntervalMs: HOUR, purgeIntervalMs: HOUR, retentionIntervalMs: HOUR },
        retention: { deletedListenerPurgeAfterMs: 0 },
      },
    });
  });
  afterAll(async () => {
    await testApp?.close();
    await receiver?.stop();
  });

  it('stores its columns under the host naming and retries a failed delivery until it succeeds', async () => {
    const columns = testApp.dataSource.getMetadata('WebhookDelivery').columns.map((column) => column.databaseName);
    expect(columns).toEqual(expect.arrayContaining(['lease_until', 'lease_owner', 'next_attempt_at']));

    const space = freshSpace();
    const path = `/${space}/snake`;
    receiver.script(path, answer(500), answer(200));
    await testApp.get(WebhookListenerService).create(space, { name: 'l', entity: 'Order', url: receiver.url(path) });
    await testApp.dataSource.getRepository(Order).save({ tenantId: space, state: OrderState.CONFIRMED });

    const deliveries = testApp.get(WebhookDeliveryService);
    const [delivery] = await waitFor(async () => {
      const found = await deliveries.searchDeliveries(space, {});
      return found.length === 1 && found[0].state === 'SUCCEEDED' && found;
    }, 'the delivery to succeed on its second attempt');
    expect(delivery).toMatchObject({ attempts: 2, leaseOwner: null, leaseUntil: null });
    const attempts = await deliveries.searchAttempts(space, { orderBys: [{ fieldName: 'attemptNumber', sorting: 'ASC' }] });
    expect(attempts.map((attempt) => [attempt.attemptNumber, attempt.statusCode])).toEqual([
      [1, 500],
      [2, 200],
    ]);
    expect(receiver.to(path)).toHaveLength(2);
  });

  it('finishes and purges a deleted listener and its URL', async () => {
    const space = freshSpace();
    const listeners = testApp.get(WebhookListenerService);
    const urls = testApp.get(WebhookUrlService);
    const url = await urls.create(space, { name: 'u', url: 'https://unused.example.com/snake' });
    const listener = await listeners.create(space, { name: 'l', entity: 'Order', url: url.id });
    await listeners.delete(space, listener.id);
    await urls.delete(space, url.id);

    const jobs = testApp.get(WebhookMaintenance);
    await jobs.finishDeletions();
    expect((await listeners.read(space, listener.id)).state).toBe('DELETED');
    expect((await urls.read(space, url.id)).state).toBe('DELETED');
    await jobs.purge();
    await expect(listeners.read(space, listener.id)).rejects.toThrow(WebhookNotFoundError);
    await expect(urls.read(space, url.id)).rejects.toThrow(WebhookNotFoundError);
  });
});
