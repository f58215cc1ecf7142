// An ES module host on NestJS 12 and TypeORM 1 using the built package through import.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import oneRequestReceiver from './one-request-receiver.cjs';
import listenerSearch from './listener-search.cjs';
import { getDataSourceToken } from '@nestjs/typeorm';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import {
  WEBHOOK_ENTITIES,
  WebhookEntity,
  WebhookIdentityService,
  WebhookListenerService,
  WebhookModule,
  WebhookState,
  WebhookValidationError,
} from 'nestjs-webhook-listener';
import { verifyStandardWebhook, verifyXSignature } from 'nestjs-webhook-listener/verify';

class Order {}
// Plain JavaScript has no decorator syntax, so the decorators are applied as the compiler would.
Reflect.decorate([PrimaryGeneratedColumn()], Order.prototype, 'id', undefined);
Reflect.decorate([WebhookState(), Column({ type: 'varchar' })], Order.prototype, 'state', undefined);
Reflect.decorate([Entity('smoke_order'), WebhookEntity({ name: 'Order', states: ['OPEN', 'PAID'] })], Order);

class AppModule {}
Reflect.decorate(
  [
    Module({
      imports: [
        TypeOrmModule.forRoot({ type: 'better-sqlite3', database: ':memory:', entities: [Order, ...WEBHOOK_ENTITIES], synchronize: true }),
        WebhookModule.forRootAsync({ useFactory: async () => ({ defaultSpaceId: 1, security: { allowPrivateNetworks: true } }) }),
      ],
    }),
  ],
  AppModule,
);

const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
const identity = await app.get(WebhookIdentityService).create(1, { name: 'smoke' });
const listener = await app
  .get(WebhookListenerService)
  .create(1, { name: 'smoke', entity: 'Order', entityStates: ['PAID'], url: 'https://receiver.example.com/hook', identity: identity.id });
assert.equal((await app.get(WebhookListenerService).read(1, listener.id)).url.url, 'https://receiver.example.com/hook');
await assert.rejects(
  app.get(WebhookListenerService).create(1, { name: '', entity: 'Order', url: 'https://x.example.com/y' }),
  WebhookValidationError,
);
assert.equal(verifyXSignature('garbage', '{}', identity.publicKey), false);
const secret = await app.get(WebhookIdentityService).revealSecret(1, identity.id);
assert.equal(verifyStandardWebhook({}, '{}', secret), false);

// A change of an order is delivered, signed, to a receiver on this machine.
const receiver = await oneRequestReceiver.startOneRequestReceiver();
const local = await app.get(WebhookListenerService).create(1, {
  name: 'local',
  entity: 'Order',
  entityStates: ['PAID'],
  url: `http://localhost:${receiver.port}/in`,
  identity: identity.id,
});
await listenerSearch.assertSearchByNameDescending(app.get(WebhookListenerService), 1, [listener.id, local.id]);
await app.get(getDataSourceToken()).getRepository(Order).save({ state: 'PAID' });
const request = await receiver.arrived;
assert.equal(JSON.parse(request.body.toString()).state, 'PAID');
assert.equal(verifyXSignature(request.headers['x-signature'], request.body, identity.publicKey), true);
assert.equal(verifyStandardWebhook(request.headers, request.body, secret), true);
await app.close();
receiver.close();
const installedVersion = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
console.log(`esm-nest12: OK (NestJS ${installedVersion('@nestjs/core')}, TypeORM ${installedVersion('typeorm')}, listener ${listener.id})`);
