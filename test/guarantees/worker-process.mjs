// A real application process for the guarantee tests: the built package, an Order entity like the
// test one, and a delivery worker. Settings come from the environment; it prints "ready" once booted
// and closes gracefully on SIGTERM.
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { WEBHOOK_ENTITIES, WebhookEntity, WebhookModule, WebhookSpace, WebhookState } from '../../dist/esm/index.js';

class Order {}
Reflect.decorate([PrimaryGeneratedColumn()], Order.prototype, 'id', undefined);
Reflect.decorate([WebhookSpace(), Column({ type: 'int' })], Order.prototype, 'tenantId', undefined);
Reflect.decorate([WebhookState(), Column({ type: 'varchar', length: 20 })], Order.prototype, 'state', undefined);
Reflect.decorate(
  [Entity('test_order'), WebhookEntity({ name: 'Order', id: 1001, states: ['PENDING', 'CONFIRMED', 'SHIPPED', 'CANCELLED'] })],
  Order,
);

const connection = JSON.parse(process.env.WEBHOOK_CONNECTION);
const options = JSON.parse(process.env.WEBHOOK_OPTIONS ?? '{}');

class WorkerModule {}
Reflect.decorate(
  [
    Module({
      imports: [
        TypeOrmModule.forRoot({ ...connection, entities: [Order, ...WEBHOOK_ENTITIES], synchronize: false }),
        WebhookModule.forRoot(options),
      ],
    }),
  ],
  WorkerModule,
);

const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error', 'warn', 'log'] });
app.enableShutdownHooks(['SIGTERM']);
process.stdout.write('ready\n');
