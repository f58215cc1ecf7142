// What every benchmark shares: the decorated entities, booting the module on a database, the forked
// receiver, CPU accounting and small statistics.
import 'reflect-metadata';
import { fork } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { WEBHOOK_ENTITIES, WebhookEntity, WebhookModule, WebhookPublisher, WebhookSpace, WebhookState } from '../dist/esm/index.js';

export const now = () => performance.timeOrigin + performance.now();
/** The middle value; for an even count, the mean of the two middle ones. */
export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
/** The nearest-rank percentile: the smallest value at least `p` % of the values are not above. */
export const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * values.length) - 1)];

export function progress(line) {
  process.stderr.write(`  ${line}\n`);
}

function decorated(name, id, table) {
  const entity = { [name]: class {} }[name];
  Reflect.decorate([PrimaryGeneratedColumn()], entity.prototype, 'id', undefined);
  Reflect.decorate([WebhookSpace(), Column({ type: 'int' })], entity.prototype, 'tenantId', undefined);
  Reflect.decorate([WebhookState(), Column({ type: 'varchar', length: 20 })], entity.prototype, 'state', undefined);
  Reflect.decorate([Entity(table), WebhookEntity({ name, id, states: ['PENDING', 'CONFIRMED'] })], entity);
  return entity;
}

export const Order = decorated('Order', 1001, 'bench_order');
/** A second decorated entity, so that listeners of other entities can fill the listener table. */
export const Invoice = decorated('Invoice', 1002, 'bench_invoice');

/** Removes an SQLite database file with its write-ahead log and shared-memory index. */
export function removeDatabaseFile(file) {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
}

/** `sqlite` is in write-ahead logging, as the README advises; `sqlite-rollback-journal` keeps SQLite's default journal. */
export function connection(database, file) {
  if (database.startsWith('sqlite')) return { type: 'better-sqlite3', database: file, enableWAL: database === 'sqlite' };
  if (database === 'postgres') return { type: 'postgres', url: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' };
  return { type: 'mariadb', url: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test' };
}

export async function bootApp(database, file, webhook, { fresh }) {
  class BenchModule {}
  Reflect.decorate(
    [
      Module({
        imports: [
          TypeOrmModule.forRoot({
            ...connection(database, file),
            entities: [Order, Invoice, ...WEBHOOK_ENTITIES],
            synchronize: fresh,
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

/** `count` CONFIRMED Order events in space 1, committed in transactions of a thousand. */
export async function publishOrders({ app, dataSource }, count) {
  const publisher = app.get(WebhookPublisher);
  for (let start = 0; start < count; start += 1_000) {
    await dataSource.transaction(async (manager) => {
      for (let i = start; i < Math.min(count, start + 1_000); i++)
        await publisher.publish({ entity: 'Order', entityId: i + 1, state: 'CONFIRMED', spaceId: 1 }, manager);
    });
  }
}

/** The receiver, in a process of its own so that it does not share this one's event loop. */
export async function startReceiver() {
  const child = fork(new URL('./receiver.mjs', import.meta.url));
  process.on('exit', () => child.kill());
  const waiting = new Map();
  child.on('message', (message) => {
    waiting.get(message.type)?.(message);
    waiting.delete(message.type);
  });
  const next = (type) => new Promise((resolve) => waiting.set(type, resolve));
  const { port } = await next('listening');
  const base = `http://127.0.0.1:${port}`;
  return {
    url: `${base}/hook`,
    /** A URL of the receiver; paths under /stall answer after `stallMs`. */
    urlOf: (path) => `${base}${path}`,
    /** Resolves with `{ at }` once `count` requests to paths starting with `pathPrefix` were answered. */
    async expect(count, { recordArrivals = false, pathPrefix = '/', stallMs = 5_000 } = {}) {
      const expecting = next('expecting');
      const reached = next('reached');
      child.send({ type: 'expect', count, recordArrivals, pathPrefix, stallMs });
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

const CLOCK_TICKS = 100;

/** CPU time (µs) so far of this process and of every database server process, from /proc: where a run spends its cores. */
export function cpuSnapshot() {
  const usage = process.cpuUsage();
  const servers = {};
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (!/^(postgres|mariadbd|redis-server)/.test(command)) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      servers[pid] = ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
    } catch {
      // the process ended while being read
    }
  }
  return {
    self: usage.user + usage.system,
    servers,
    machine: machineTicks(),
    loop: performance.eventLoopUtilization(),
    mainThread: mainThreadSchedule(),
  };
}

/**
 * The main thread's time so far (ns) on a core and ready to run but waiting for one, from the
 * scheduler's statistics in /proc; `null` where the kernel keeps none.
 */
function mainThreadSchedule() {
  try {
    const [onCore, waitingForCore] = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { onCore, waitingForCore };
  } catch {
    return null;
  }
}

/** The machine's CPU ticks so far from /proc/stat: all of them, and the idle ones (idle and waiting for I/O). */
function machineTicks() {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { total: ticks.reduce((sum, value) => sum + value, 0), idle: ticks[3] + ticks[4] };
}

/**
 * Between two snapshots: CPU µs per item of this process and of the database servers (other clients
 * of theirs included); how busy this process's event loop was (1: never waiting); the share of the
 * machine's CPU time left idle; and µs per item its main thread spent on a core and waiting for one
 * while ready to run (a busy event loop counts both).
 */
export function cpuPerItem(before, after, count) {
  const database = Object.entries(after.servers).reduce((sum, [pid, micros]) => sum + micros - (before.servers[pid] ?? 0), 0);
  const machineIdle = (after.machine.idle - before.machine.idle) / (after.machine.total - before.machine.total);
  return {
    bench: Math.round((after.self - before.self) / count),
    database: Math.round(database / count),
    eventLoopUtilization: Number(performance.eventLoopUtilization(after.loop, before.loop).utilization.toFixed(2)),
    machineIdle: Number(machineIdle.toFixed(2)),
    ...(before.mainThread &&
      after.mainThread && {
        mainThreadOnCore: Math.round((after.mainThread.onCore - before.mainThread.onCore) / 1000 / count),
        mainThreadWaitingForCore: Math.round((after.mainThread.waitingForCore - before.mainThread.waitingForCore) / 1000 / count),
      }),
  };
}
