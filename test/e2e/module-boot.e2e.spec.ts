import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import {
  WEBHOOK_ENTITIES,
  WebhookConfigurationError,
  WebhookListenerService,
  WebhookModule,
  WebhookUrlService,
  type WebhookModuleOptions,
} from '../../lib/index.js';
import { connectionOptions, selectedDatabases } from '../src/databases.js';
import { LogCollector } from '../src/log-collector.js';
import { HOST_ENTITIES } from '../src/test-app.js';
import { createTestApp } from '../src/test-app.js';

describe.each(selectedDatabases())('WebhookModule boot on %s', (database) => {
  it('boots with forRoot and listed entities, and serves the services', async () => {
    const { get, close } = await createTestApp(database);
    try {
      const listener = await get(WebhookListenerService).create(1, { name: 'orders', entity: 'Order', url: 'https://example.com/hook' });
      expect(listener).toMatchObject({ id: expect.any(Number), state: 'ACTIVE', url: { url: 'https://example.com/hook' } });
    } finally {
      await close();
    }
  });

  it('boots with forRoot() and no options at all', async () => {
    const { get, close } = await createTestApp(database, { webhookModule: WebhookModule.forRoot() });
    try {
      await get(WebhookUrlService).create(1, { name: 'a', url: 'https://example.com/a' });
      expect(await get(WebhookUrlService).count(1)).toBe(1);
    } finally {
      await close();
    }
  });

  it('boots with autoLoadEntities and no webhook entities listed', async () => {
    const { get, close } = await createTestApp(database, { autoLoadEntities: true });
    try {
      expect(await get(WebhookUrlService).count(1)).toBe(0);
      await get(WebhookUrlService).create(1, { name: 'a', url: 'https://example.com/a' });
      expect(await get(WebhookUrlService).count(1)).toBe(1);
    } finally {
      await close();
    }
  });

  @Injectable()
  class OptionsFactory {
    createWebhookOptions(): WebhookModuleOptions {
      return { defaultSpaceId: 7 };
    }
  }

  @Module({ providers: [OptionsFactory], exports: [OptionsFactory] })
  class OptionsModule {}

  it.each([
    ['useFactory', WebhookModule.forRootAsync({ useFactory: async () => ({ defaultSpaceId: 7 }) })],
    ['useClass', WebhookModule.forRootAsync({ useClass: OptionsFactory })],
    ['useExisting', WebhookModule.forRootAsync({ imports: [OptionsModule], useExisting: OptionsFactory })],
  ])('boots with forRootAsync(%s)', async (_kind, webhookModule) => {
    const { get, close } = await createTestApp(database, { webhookModule });
    try {
      expect(await get(WebhookListenerService).count(1)).toBe(0);
    } finally {
      await close();
    }
  });

  it('uses a named DataSource given as dataSourceName', async () => {
    @Module({
      imports: [
        TypeOrmModule.forRoot({
          ...connectionOptions(database),
          name: 'webhooks',
          entities: [...HOST_ENTITIES, ...WEBHOOK_ENTITIES],
          synchronize: true,
          dropSchema: true,
        } as Parameters<typeof TypeOrmModule.forRoot>[0]),
        WebhookModule.forRoot({ dataSourceName: 'webhooks' }),
      ],
    })
    class NamedModule {}
    const app = await NestFactory.createApplicationContext(NamedModule, { logger: ['error'], abortOnError: false });
    try {
      await app.get(WebhookUrlService).create(3, { name: 'named', url: 'https://example.com/named' });
      const named = app.get<DataSource>(getDataSourceToken('webhooks'));
      expect(await named.query('SELECT COUNT(*) AS n FROM webhook_url')).toEqual([{ n: expect.anything() }]);
      expect(Number((await named.query('SELECT COUNT(*) AS n FROM webhook_url'))[0].n)).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe('WebhookModule options', () => {
  it.each([
    [{ delivery: { concurrency: 0 } }, 'delivery.concurrency', 'from 1 to 10000'],
    [{ delivery: { retrySchedule: [1000, -1] } }, 'delivery.retrySchedule[1]', 'from 0 to'],
    [{ signing: { schemes: ['md5'] } }, 'signing.schemes', '"x-signature", "standard-webhooks"'],
    [{ signing: { keyEncryptionKey: 'short' } }, 'signing.keyEncryptionKey', '32 bytes'],
    [{ security: { allowPrivateNetworks: 'yes' } }, 'security.allowPrivateNetworks', 'true or false'],
    [{ defaultSpaceId: 1.5 }, 'defaultSpaceId', 'integer'],
    [{ colour: 'blue' }, 'options', 'allowed: defaultSpaceId'],
  ])('refuses to boot with bad options %j', async (options, name, allowed) => {
    const boot = createTestApp('sqlite', { webhook: options as WebhookModuleOptions, logger: false });
    await expect(boot).rejects.toThrow(WebhookConfigurationError);
    await expect(createTestApp('sqlite', { webhook: options as WebhookModuleOptions, logger: false })).rejects.toThrow(
      expect.objectContaining({ message: expect.stringMatching(new RegExp(`${escape(name)}.*${escape(allowed)}`)) }),
    );
  });
});

describe('WebhookModule on an SQLite file', () => {
  async function warningsAtStart(walEnabled: boolean): Promise<string[]> {
    const file = join(tmpdir(), `webhook-journal-${process.pid}-${Date.now()}.sqlite`);
    const logger = new LogCollector();
    const app = await createTestApp('sqlite', {
      connection: { type: 'better-sqlite3', database: file, enableWAL: walEnabled },
      webhook: { worker: { enabled: true } },
      logger,
    });
    await app.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
    return logger.warnings;
  }

  it('warns at start that a rollback journal is synced with every commit, and names the remedy', async () => {
    expect(await warningsAtStart(false)).toEqual([expect.stringMatching(/journal mode "delete".*enableWAL: true/)]);
  });

  it('starts without that warning in write-ahead logging', async () => {
    expect(await warningsAtStart(true)).toEqual([]);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
