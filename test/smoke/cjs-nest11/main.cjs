// A CommonJS host on NestJS 11 and TypeORM 0.3 using the built package through require().
require('reflect-metadata');
const assert = require('node:assert/strict');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TypeOrmModule, getDataSourceToken } = require('@nestjs/typeorm');
const { Column, Entity, PrimaryGeneratedColumn } = require('typeorm');
const webhooks = require('nestjs-webhook-listener');
const { startOneRequestReceiver } = require('./one-request-receiver.cjs');
const { assertSearchByNameDescending } = require('./listener-search.cjs');
const { verifyStandardWebhook, verifyXSignature } = require('nestjs-webhook-listener/verify');

const {
  WEBHOOK_ENTITIES,
  WebhookEntity,
  WebhookIdentityService,
  WebhookListenerService,
  WebhookModule,
  WebhookState,
  WebhookValidationError,
} = webhooks;

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
        WebhookModule.forRoot({ security: { allowPrivateNetworks: true } }),
      ],
    }),
  ],
  AppModule,
);

function installedVersion(name) {
  return JSON.parse(require('node:fs').readFileSync(require('node:path').join(__dirname, 'node_modules', name, 'package.json'), 'utf8'))
    .version;
}

async function main() {
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
  const receiver = await startOneRequestReceiver();
  const local = await app.get(WebhookListenerService).create(1, {
    name: 'local',
    entity: 'Order',
    entityStates: ['PAID'],
    url: `http://localhost:${receiver.port}/in`,
    identity: identity.id,
  });
  await assertSearchByNameDescending(app.get(WebhookListenerService), 1, [listener.id, local.id]);
  await app.get(getDataSourceToken()).getRepository(Order).save({ state: 'PAID' });
  const request = await receiver.arrived;
  assert.equal(JSON.parse(request.body.toString()).state, 'PAID');
  assert.equal(verifyXSignature(request.headers['x-signature'], request.body, identity.publicKey), true);
  assert.equal(verifyStandardWebhook(request.headers, request.body, secret), true);
  await app.close();
  receiver.close();
  console.log(
    `cjs-nest11: OK (NestJS ${installedVersion('@nestjs/core')}, TypeORM ${installedVersion('typeorm')}, listener ${listener.id})`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
