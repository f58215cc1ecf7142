// Benchmarks of the built package (run `npm run bench`). Every figure is printed beside a reference
// measured in the same run, since this machine is shared and noisy; each is the median of RUNS runs.
import 'reflect-metadata';
import { fork } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { Column, DataSource, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Agent, request } from 'undici';
import {
  WEBHOOK_ENTITIES,
  WebhookEntity,
  WebhookIdentityService,
  WebhookListenerService,
  WebhookModule,
  WebhookPublisher,
  WebhookSpace,
  WebhookState,
} from '../dist/esm/index.js';
import { createHmac, randomBytes } from 'node:crypto';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 5_000);
const SAVES = Number(process.env.BENCH_SAVES ?? 1_000);
const DATABASES = (process.env.BENCH_DATABASES ?? 'sqlite,postgres').split(',');
const MEASURES = new Set((process.env.BENCH_MEASURES ?? 'p1,p2,p3,p4,p5,p6').split(','));
const now = () => performance.timeOrigin + performance.now();
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))];

class Order {}
Reflect.decorate([PrimaryGeneratedColumn()], Order.prototype, 'id', undefined);
Reflect.decorate([WebhookSpace(), Column({ type: 'int' })], Order.prototype, 'tenantId', undefined);
Reflect.decorate([WebhookState(), Column({ type: 'varchar', length: 20 })], Order.prototype, 'state', undefined);
Reflect.decorate([Entity('bench_order'), WebhookEntity({ name: 'Order', id: 1001, states: ['PENDING', 'CONFIRMED'] })], Order);

function connection(database, file) {
  if (database === 'sqlite') return { type: 'better-sqlite3', database: file };
  if (database === 'postgres') return { type: 'postgres', url: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' };
  return { type: 'mariadb', url: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test' };
}

async function startReceiver() {
  const child = fork(new URL('./receiver.mjs', import.meta.url));
  process.on('exit', () => child.kill());
  const waiting = new Map();
  child.on('message', (message) => {
    waiting.get(message.type)?.(message);
    waiting.delete(message.type);
  });
  const next = (type) => new Promise((resolve) => waiting.set(type, resolve));
  const { port } = await next('listening');
  return {
    url: `http://127.0.0.1:${port}/hook`,
    async expect(count, recordArrivals = false) {
      const expecting = next('expecting');
      const reached = next('reached');
      child.send({ type: 'expect', count, recordArrivals });
      await expecting;
      return reached;
    },
    async arrivals() {
      const answer = next('arrivals');
      child.send({ type: 'arrivals' });
      return (await answer).arrivals;
    },
    stop: () => child.send({ type: 'stop' }),
  };
}

async function bootApp(database, file, webhook, { fresh }) {
  class BenchModule {}
  Reflect.decorate(
    [
      Module({
        imports: [
          TypeOrmModule.forRoot({
            ...connection(database, file),
            entities: [Order, ...WEBHOOK_ENTITIES],
            synchronize: true,
            dropSchema: fresh,
          }),
          WebhookModule.forRoot(webhook),
        ],
      }),
    ],
    BenchModule,
  );
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: ['error'] });
  return { app, dataSource: app.get(getDataSourceToken()) };
}

/** The ceiling: undici POSTs of pre-signed bodies, 64 in flight, to the same receiver. */
async function rawCeiling(receiver, count) {
  const secret = randomBytes(32);
  const bodies = Array.from({ length: 100 }, (_, i) =>
    JSON.stringify({
      eventId: i,
      entityId: i,
      listenerEntityId: 1001,
      listenerEntityTechnicalName: 'Order',
      spaceId: 1,
      webhookListenerId: 1,
      timestamp: '2026-11-27T12:00:00+0000',
      state: 'CONFIRMED',
    }),
  );
  const headers = bodies.map((body, i) => ({
    'content-type': 'application/json',
    'webhook-id': `msg_${i}`,
    'webhook-timestamp': '1795780800',
    'webhook-signature': `v1,${createHmac('sha256', secret).update(`msg_${i}.1795780800.${body}`).digest('base64')}`,
  }));
  const agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 });
  const reached = receiver.expect(count);
  const start = now();
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++ % bodies.length;
      const response = await request(receiver.url, { method: 'POST', dispatcher: agent, body: bodies[i], headers: headers[i] });
      await response.body.dump();
    }
  };
  await Promise.all(Array.from({ length: 64 }, lane));
  const { at } = await reached;
  await agent.close();
  return count / ((at - start) / 1000);
}

const SIGNING_MODES = {
  'standard-webhooks': { schemes: ['standard-webhooks'], signed: true },
  both: { schemes: ['x-signature', 'standard-webhooks'], signed: true },
  off: { schemes: ['x-signature', 'standard-webhooks'], signed: false },
};

/** P1: committed events to receiver acknowledgements, 64 in flight (includes the worker's boot). */
async function moduleThroughput(database, receiver, count, mode) {
  const file = join(tmpdir(), `bench-${process.pid}.sqlite`);
  rmSync(file, { force: true });
  const { schemes, signed } = SIGNING_MODES[mode];
  const producer = await bootApp(database, file, { worker: { enabled: false }, security: { allowPrivateNetworks: true } }, { fresh: true });
  const identity = await producer.app.get(WebhookIdentityService).create(1, { name: 'bench' });
  await producer.app
    .get(WebhookListenerService)
    .create(1, { name: 'bench', entity: 'Order', url: receiver.url, identity: identity.id, enablePayloadSignatureAndState: signed });
  const publisher = producer.app.get(WebhookPublisher);
  for (let start = 0; start < count; start += 1_000) {
    await producer.dataSource.transaction(async (manager) => {
      for (let i = start; i < Math.min(count, start + 1_000); i++)
        await publisher.publish({ entity: 'Order', entityId: i + 1, state: 'CONFIRMED', spaceId: 1 }, manager);
    });
  }
  await producer.app.close();

  const reached = receiver.expect(count);
  const start = now();
  const worker = await bootApp(
    database,
    file,
    {
      security: { allowPrivateNetworks: true },
      signing: { schemes },
      delivery: { concurrency: 64, perUrlConcurrency: 64, batchSize: 500 },
    },
    { fresh: false },
  );
  const { at } = await reached;
  await worker.app.close();
  rmSync(file, { force: true });
  return count / ((at - start) / 1000);
}

/** P2: commit of a save() to arrival at the receiver, one change every 20 ms. */
async function latency(database, receiver, count) {
  const file = join(tmpdir(), `bench-latency-${process.pid}.sqlite`);
  rmSync(file, { force: true });
  const { app, dataSource } = await bootApp(database, file, { security: { allowPrivateNetworks: true } }, { fresh: true });
  await app.get(WebhookListenerService).create(1, { name: 'bench', entity: 'Order', url: receiver.url });
  const reached = receiver.expect(count, true);
  const committed = [];
  for (let i = 0; i < count; i++) {
    await dataSource.getRepository(Order).save({ tenantId: 1, state: 'CONFIRMED' });
    committed.push(now());
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await reached;
  const arrivals = await receiver.arrivals();
  await app.close();
  rmSync(file, { force: true });
  const delays = Object.keys(arrivals)
    .map(Number)
    .sort((a, b) => a - b)
    .map((eventId, index) => arrivals[eventId] - committed[index]);
  return { p50: percentile(delays, 50), p99: percentile(delays, 99) };
}

/** P3: SAVES sequential save() calls with 0, 1 and 10 matching listeners, and with the module absent. */
async function saveCost(database) {
  const file = join(tmpdir(), `bench-save-${process.pid}.sqlite`);
  const timeSaves = async (dataSource, tenantId) => {
    const repository = dataSource.getRepository(Order);
    for (let i = 0; i < 50; i++) await repository.save({ tenantId, state: 'CONFIRMED' });
    const start = now();
    for (let i = 0; i < SAVES; i++) await repository.save({ tenantId, state: 'CONFIRMED' });
    return (now() - start) / SAVES;
  };
  rmSync(file, { force: true });
  const plain = new DataSource({ ...connection(database, file), entities: [Order], synchronize: true, dropSchema: true });
  await plain.initialize();
  const absent = await timeSaves(plain, 1);
  await plain.destroy();
  rmSync(file, { force: true });
  const { app, dataSource } = await bootApp(database, file, { worker: { enabled: false } }, { fresh: true });
  const listeners = app.get(WebhookListenerService);
  for (let i = 0; i < 10; i++) await listeners.create(3, { name: `l${i}`, entity: 'Order', url: 'https://bench.example.com/hook' });
  await listeners.create(2, { name: 'one', entity: 'Order', url: 'https://bench.example.com/hook' });
  const result = { absent, 0: await timeSaves(dataSource, 1), 1: await timeSaves(dataSource, 2), 10: await timeSaves(dataSource, 3) };
  await app.close();
  rmSync(file, { force: true });
  return result;
}

async function throughputMeasures(database, receiver) {
  const ceiling = [];
  const throughput = { 'standard-webhooks': [], both: [], off: [] };
  for (let run = 0; run < RUNS; run++) {
    ceiling.push(await rawCeiling(receiver, EVENTS));
    progress(`${database} run ${run + 1}: ceiling ${Math.round(ceiling.at(-1))}/s`);
    for (const mode of Object.keys(throughput)) {
      throughput[mode].push(await moduleThroughput(database, receiver, EVENTS, mode));
      progress(`${database} run ${run + 1}: ${mode} ${Math.round(throughput[mode].at(-1))}/s`);
    }
  }
  const ceilingMedian = median(ceiling);
  return {
    ceilingPerSecond: Math.round(ceilingMedian),
    throughput: Object.fromEntries(Object.entries(throughput).map(([mode, values]) => [mode, ofCeiling(values, ceilingMedian)])),
  };
}

function ofCeiling(values, ceilingMedian) {
  return { perSecond: Math.round(median(values)), ofCeiling: Number((median(values) / ceilingMedian).toFixed(2)) };
}

async function latencyAndSaveMeasures(database, receiver) {
  const latencies = [];
  const saves = [];
  for (let run = 0; run < RUNS; run++) {
    if (MEASURES.has('p2')) latencies.push(await latency(database, receiver, 200));
    if (MEASURES.has('p3')) saves.push(await saveCost(database));
  }
  const saveMedian = (key) => median(saves.map((s) => s[key]));
  const ratio = (key) => Number((saveMedian(key) / saveMedian('absent')).toFixed(2));
  return {
    ...(latencies.length > 0 && {
      latencyMs: {
        p50: Number(median(latencies.map((l) => l.p50)).toFixed(2)),
        p99: Number(median(latencies.map((l) => l.p99)).toFixed(2)),
      },
    }),
    ...(saves.length > 0 && {
      saveMs: Object.fromEntries(['absent', 0, 1, 10].map((key) => [key, Number(saveMedian(key).toFixed(3))])),
      saveRatio: { 0: ratio(0), 1: ratio(1), 10: ratio(10) },
    }),
  };
}

async function main() {
  const receiver = await startReceiver();
  const results = {
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    runs: RUNS,
    events: EVENTS,
    saves: SAVES,
    databases: {},
  };
  for (const database of DATABASES) {
    results.databases[database] = {
      ...(MEASURES.has('p1') && (await throughputMeasures(database, receiver))),
      ...((MEASURES.has('p2') || MEASURES.has('p3')) && (await latencyAndSaveMeasures(database, receiver))),
    };
    printDatabase(database, results.databases[database]);
  }
  receiver.stop();
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify(results, null, 2));
  console.log(
    `\nmachine: ${results.machine.cpus} × ${results.machine.cpuModel}, ${results.machine.memoryGiB} GiB, Node ${results.machine.node}; median of ${RUNS} runs; written to ${file}`,
  );
}

function progress(line) {
  process.stderr.write(`  ${line}\n`);
}

function printDatabase(database, r) {
  console.log(`\n${database}`);
  console.log('| measure | result | reference | ratio |');
  console.log('|---|---|---|---|');
  if (r.throughput) console.log(`| P1 throughput, raw undici ceiling | ${r.ceilingPerSecond}/s | | 1.00 |`);
  for (const [mode, value] of Object.entries(r.throughput ?? {}))
    console.log(`| P1 throughput, signing ${mode} | ${value.perSecond}/s | ${r.ceilingPerSecond}/s ceiling | ${value.ofCeiling} |`);
  if (r.latencyMs) console.log(`| P2 commit → receiver, p50 / p99 | ${r.latencyMs.p50} / ${r.latencyMs.p99} ms | | |`);
  for (const key of r.saveMs ? ['0', '1', '10'] : [])
    console.log(
      `| P3 save() with ${key} matching listeners | ${r.saveMs[key]} ms | ${r.saveMs.absent} ms without the module | ${r.saveRatio[key]} |`,
    );
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
