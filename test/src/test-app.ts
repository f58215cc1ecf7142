import { Module, type DynamicModule, type INestApplicationContext, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, DataSourceOptions, Logger } from 'typeorm';
import { WEBHOOK_ENTITIES, WebhookDeliveryService, WebhookModule, type WebhookModuleOptions } from '../../lib/index.js';
import { connectionOptions, type TestDatabase } from './databases.js';
import { Order, Parcel, Refund, Shipment, Voucher } from './order.entity.js';
import type { StatementCounter } from './statement-counter.js';

export const HOST_ENTITIES = [Order, Refund, Parcel, Voucher, Shipment];

export interface TestApp {
  app: INestApplicationContext;
  dataSource: DataSource;
  get<T>(token: new (...args: never[]) => T): T;
  close(): Promise<void>;
}

export interface TestAppOptions {
  webhook?: WebhookModuleOptions;
  /** Replaces `WebhookModule.forRoot(webhook)`. */
  webhookModule?: DynamicModule;
  hostEntities?: Function[];
  /** Use `autoLoadEntities` instead of listing the webhook entities. */
  autoLoadEntities?: boolean;
  extraImports?: DynamicModule[];
  /** Connection settings instead of the database's defaults (e.g. an SQLite file two apps share). */
  connection?: DataSourceOptions;
  /** Keep the tables of an earlier app instead of dropping them. */
  keepSchema?: boolean;
  /** A TypeORM logger, e.g. to count statements. */
  typeormLogger?: Logger;
  /**
   * Counts every statement the database runs: on better-sqlite3 through its `verbose` hook, since the
   * module runs some statements on the connection itself, past TypeORM; elsewhere through TypeORM's logger.
   */
  executedStatements?: StatementCounter;
  /** Nest log levels; default errors only. */
  logger?: false | ('error' | 'warn' | 'log' | 'debug')[] | LoggerService;
}

/** Boots a real Nest application context on a fresh schema of the given database. */
export async function createTestApp(database: TestDatabase, options: TestAppOptions = {}): Promise<TestApp> {
  const hostEntities = options.hostEntities ?? HOST_ENTITIES;
  const typeorm = TypeOrmModule.forRoot({
    ...(options.connection ?? connectionOptions(database)),
    entities: options.autoLoadEntities ? hostEntities : [...hostEntities, ...WEBHOOK_ENTITIES],
    autoLoadEntities: options.autoLoadEntities ?? false,
    synchronize: true,
    dropSchema: !options.keepSchema,
    ...(options.typeormLogger && { logging: true, logger: options.typeormLogger }),
    ...(options.executedStatements && executedStatementsOptions(database, options.executedStatements)),
  } as Parameters<typeof TypeOrmModule.forRoot>[0]);

  @Module({
    imports: [
      typeorm,
      options.webhookModule ?? WebhookModule.forRoot(withWorkerOffByDefault(options.webhook)),
      ...(options.extraImports ?? []),
    ],
  })
  class TestAppModule {}

  const app = await NestFactory.createApplicationContext(TestAppModule, { logger: options.logger ?? ['error'], abortOnError: false });
  const dataSource = app.get<DataSource>(getDataSourceToken());
  return {
    app,
    dataSource,
    get: (token) => app.get(token),
    close: () => app.close(),
  };
}

function executedStatementsOptions(database: TestDatabase, counter: StatementCounter): object {
  return database === 'sqlite' ? { verbose: (sql: string) => counter.logQuery(sql) } : { logging: true, logger: counter };
}

/** Deliveries of a space that succeeded, as a user reads them from the log. */
export function succeededDeliveries(testApp: TestApp, space: number): Promise<number> {
  return testApp
    .get(WebhookDeliveryService)
    .countDeliveries(space, { type: 'LEAF', fieldName: 'state', operator: 'EQUALS', value: 'SUCCEEDED' });
}

/** Suites that do not test delivery keep the worker off, so no request leaves for their example URLs. */
function withWorkerOffByDefault(options: WebhookModuleOptions = {}): WebhookModuleOptions {
  return { ...options, worker: { enabled: false, ...options.worker } };
}
