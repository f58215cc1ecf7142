// Benchmarks of the built package (run `npm run bench`). Every figure is printed beside a reference
// measured in the same run, since this machine is shared and noisy; each is the median of RUNS runs.
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { Agent } from 'undici';
import { WebhookIdentityService, WebhookListenerService } from '../dist/esm/index.js';
import {
  bootApp,
  connection,
  cpuPerItem,
  cpuSnapshot,
  median,
  now,
  Order,
  percentile,
  progress,
  publishOrders,
  removeDatabaseFile,
  startReceiver,
} from './app.mjs';
import { driverFloor, listenersOfSpaces } from './floor.mjs';
import { bullmqThroughput } from './peers/bullmq.mjs';
import { PLAIN_HEADERS, post, targetOf } from './peers/delivery.mjs';
import { pgBossThroughput } from './peers/pg-boss.mjs';
import { alternating, backlogDrain, besideSlowReceivers, listenerScale, orderSave, THROUGHPUT_DELIVERY } from './scale.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 20_000);
const SAVES = Number(process.env.BENCH_SAVES ?? 1_000);
const SAVE_BLOCK = 50;
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 1_000_000);
const DATABASES = (process.env.BENCH_DATABASES ?? 'sqlite,postgres').split(',');
const MEASURES = new Set((process.env.BENCH_MEASURES ?? 'p1,p2,p3,p4,p5,p6').split(','));
const CAPPED_OLD_SPACE_MIB = 96;
const ratio = (value, reference) => Number((value / reference).toFixed(2));

/** The ceiling: undici POSTs of pre-signed bodies, 64 in flight, to the same receiver, sent as the module sends (`dispatch()`). */
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
    ...PLAIN_HEADERS,
    'webhook-id': `msg_${i}`,
    'webhook-timestamp': '1795780800',
    'webhook-signature': `v1,${createHmac('sha256', secret).update(`msg_${i}.1795780800.${body}`).digest('base64')}`,
  }));
  const agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 });
  const target = targetOf(receiver.url);
  const reached = receiver.expect(count);
  const cpuBefore = cpuSnapshot();
  const start = now();
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++ % bodies.length;
      await post(agent, target, bodies[i], headers[i]);
    }
  };
  await Promise.all(Array.from({ length: 64 }, lane));
  const { at } = await reached;
  const cpu = cpuPerItem(cpuBefore, cpuSnapshot(), count);
  await agent.close();
  return { perSecond: count / ((at - start) / 1000), cpu };
}

const SIGNING_MODES = {
  'standard-webhooks': { schemes: ['standard-webhooks'], signed: true },
  both: { schemes: ['x-signature', 'standard-webhooks'], signed: true },
  off: { schemes: ['x-signature', 'standard-webhooks'], signed: false },
};

/** P1: committed events to receiver acknowledgements, 64 in flight (includes the worker's boot). */
async function moduleThroughput(database, receiver, count, mode) {
  const file = join(tmpdir(), `bench-${process.pid}.sqlite`);
  removeDatabaseFile(file);
  const { schemes, signed } = SIGNING_MODES[mode];
  const producer = await bootApp(database, file, { worker: { enabled: false }, security: { allowPrivateNetworks: true } }, { fresh: true });
  const identity = await producer.app.get(WebhookIdentityService).create(1, { name: 'bench' });
  await producer.app
    .get(WebhookListenerService)
    .create(1, { name: 'bench', entity: 'Order', url: receiver.url, identity: identity.id, enablePayloadSignatureAndState: signed });
  await publishOrders(producer, count);
  await producer.app.close();

  const reached = receiver.expect(count);
  const cpuBefore = cpuSnapshot();
  const start = now();
  const worker = await bootApp(
    database,
    file,
    { security: { allowPrivateNetworks: true }, signing: { schemes }, delivery: THROUGHPUT_DELIVERY },
    { fresh: false },
  );
  const { at } = await reached;
  const cpu = cpuPerItem(cpuBefore, cpuSnapshot(), count);
  await worker.app.close();
  removeDatabaseFile(file);
  return { perSecond: count / ((at - start) / 1000), cpu };
}

/**
 * P2: commit of a save() to arrival at the receiver, one change every 20 ms. The commit is timed by the
 * first subscriber of the DataSource as TypeORM reports it, before the worker, woken by it, runs.
 */
async function latency(database, receiver, count) {
  const file = join(tmpdir(), `bench-latency-${process.pid}.sqlite`);
  removeDatabaseFile(file);
  const { app, dataSource } = await bootApp(database, file, { security: { allowPrivateNetworks: true } }, { fresh: true });
  await app.get(WebhookListenerService).create(1, { name: 'bench', entity: 'Order', url: receiver.url });
  const committed = [];
  let saving = false;
  dataSource.subscribers.unshift({ afterTransactionCommit: () => saving && committed.push(now()) });
  const reached = receiver.expect(count, { recordArrivals: true });
  for (let i = 0; i < count; i++) {
    saving = true;
    await dataSource.getRepository(Order).save({ tenantId: 1, state: 'CONFIRMED' });
    saving = false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (committed.length !== count) throw new Error(`P2 timed ${committed.length} commits of ${count} saves`);
  await reached;
  const arrivals = await receiver.arrivals();
  await app.close();
  removeDatabaseFile(file);
  const delays = Object.keys(arrivals)
    .map(Number)
    .sort((a, b) => a - b)
    .map((eventId, index) => arrivals[eventId] - committed[index]);
  return { p50: percentile(delays, 50), p99: percentile(delays, 99) };
}

/**
 * P3: SAVES sequential save() calls each with 0, 1 and 10 matching listeners, and through a second
 * DataSource on the same table without the module; beside them the floor (see floor.mjs): the same
 * rows written through the driver alone, the Order by itself and with the event and deliveries of 1
 * and 10 listeners. All take turns in blocks of SAVE_BLOCK, so that a slow moment of the machine (its
 * disk above all) falls on each of them alike, and each sends its saves through a connection of its
 * own, which runs nothing else: on PostgreSQL the same save took longer on a connection that also ran
 * the other blocks (see README, Performance).
 */
async function saveCost(database) {
  const file = join(tmpdir(), `bench-save-${process.pid}.sqlite`);
  removeDatabaseFile(file);
  const { app, dataSource } = await bootApp(database, file, { worker: { enabled: false } }, { fresh: true });
  const plain = new DataSource({ ...connection(database, file), entities: [Order] });
  await plain.initialize();
  const listeners = app.get(WebhookListenerService);
  for (let i = 0; i < 10; i++) await listeners.create(3, { name: `l${i}`, entity: 'Order', url: 'https://bench.example.com/hook' });
  await listeners.create(2, { name: 'one', entity: 'Order', url: 'https://bench.example.com/hook' });
  const floor = await driverFloor(database, file, dataSource, await listenersOfSpaces(dataSource, [2, 3]));
  const runners = [];
  const onOwnConnection = (source, tenantId) => {
    runners.push(source.createQueryRunner());
    return orderSave(runners.at(-1).manager, tenantId);
  };
  const savers = {
    absent: onOwnConnection(plain, 1),
    0: onOwnConnection(dataSource, 1),
    1: onOwnConnection(dataSource, 2),
    10: onOwnConnection(dataSource, 3),
    floorAbsent: floor.saver(1),
    floor1: floor.saver(2),
    floor10: floor.saver(3),
  };
  const msPerSave = await alternating(savers, SAVES, SAVE_BLOCK);
  await floor.close();
  for (const runner of runners) await runner.release();
  await plain.destroy();
  await app.close();
  removeDatabaseFile(file);
  return msPerSave;
}

/** P1's cases as [label, database, signing mode]: on SQLite also once with its default rollback journal, for comparison. */
function throughputCases(database) {
  const cases = Object.keys(SIGNING_MODES).map((mode) => [mode, database, mode]);
  if (database === 'sqlite') cases.push(['standard-webhooks, rollback journal', 'sqlite-rollback-journal', 'standard-webhooks']);
  return cases;
}

async function throughputMeasures(database, receiver) {
  const ceiling = [];
  const throughput = Object.fromEntries(throughputCases(database).map(([label]) => [label, []]));
  const peers = { bullmq: [], 'pg-boss': [] };
  const cpu = {};
  for (let run = 0; run < RUNS; run++) {
    const raw = await rawCeiling(receiver, EVENTS);
    ceiling.push(raw.perSecond);
    cpu.ceiling = raw.cpu;
    progress(`${database} run ${run + 1}: ceiling ${Math.round(raw.perSecond)}/s, CPU ${JSON.stringify(raw.cpu)}`);
    for (const [label, databaseOfCase, mode] of throughputCases(database)) {
      const measured = await moduleThroughput(databaseOfCase, receiver, EVENTS, mode);
      throughput[label].push(measured.perSecond);
      cpu[label] = measured.cpu;
      progress(`${database} run ${run + 1}: ${label} ${Math.round(measured.perSecond)}/s, CPU ${JSON.stringify(measured.cpu)}`);
    }
    if (database === 'postgres') {
      peers.bullmq.push(await bullmqThroughput(receiver, EVENTS));
      progress(`${database} run ${run + 1}: BullMQ peer ${Math.round(peers.bullmq.at(-1))}/s`);
      peers['pg-boss'].push(await pgBossThroughput(receiver, EVENTS));
      progress(`${database} run ${run + 1}: pg-boss peer ${Math.round(peers['pg-boss'].at(-1))}/s`);
    }
  }
  const ceilingMedian = median(ceiling);
  const ofCeiling = (values) => ({ perSecond: Math.round(median(values)), ofCeiling: ratio(median(values), ceilingMedian) });
  return {
    ceilingPerSecond: Math.round(ceilingMedian),
    throughput: Object.fromEntries(Object.entries(throughput).map(([mode, values]) => [mode, ofCeiling(values)])),
    ...(database === 'postgres' && { peers: { bullmq: ofCeiling(peers.bullmq), 'pg-boss': ofCeiling(peers['pg-boss']) } }),
    lastRunCpu: cpu,
  };
}

/**
 * P3's figures from the runs: median time of a save per listener count and its ratio to the save
 * without the module; and the floor's, each against the driver's save of the Order alone.
 */
function saveFigures(saves) {
  const saveMedian = (key) => median(saves.map((s) => s[key]));
  const ms = (keys) => Object.fromEntries(keys.map((key) => [key, Number(saveMedian(key).toFixed(3))]));
  return {
    saveMs: ms(['absent', 0, 1, 10]),
    saveRatio: Object.fromEntries([0, 1, 10].map((key) => [key, ratio(saveMedian(key), saveMedian('absent'))])),
    floorMs: ms(['floorAbsent', 'floor1', 'floor10']),
    floorRatio: { 1: ratio(saveMedian('floor1'), saveMedian('floorAbsent')), 10: ratio(saveMedian('floor10'), saveMedian('floorAbsent')) },
  };
}

async function latencyAndSaveMeasures(database, receiver) {
  const latencies = [];
  const saves = [];
  // On SQLite, P3 also with the default rollback journal, whose syncs dominate a save there.
  const rollbackJournalSaves = [];
  for (let run = 0; run < RUNS; run++) {
    if (MEASURES.has('p2')) latencies.push(await latency(database, receiver, 200));
    if (MEASURES.has('p3')) saves.push(await saveCost(database));
    if (MEASURES.has('p3') && database === 'sqlite') rollbackJournalSaves.push(await saveCost('sqlite-rollback-journal'));
  }
  return {
    ...(latencies.length > 0 && {
      latencyMs: {
        p50: Number(median(latencies.map((l) => l.p50)).toFixed(2)),
        p99: Number(median(latencies.map((l) => l.p99)).toFixed(2)),
      },
    }),
    ...(saves.length > 0 && saveFigures(saves)),
    ...(rollbackJournalSaves.length > 0 && { rollbackJournal: saveFigures(rollbackJournalSaves) }),
  };
}

async function listenerScaleMeasure(database) {
  const runs = [];
  for (let run = 0; run < RUNS; run++) {
    const { alone, besideMany, stored } = await listenerScale(database, SAVES, SAVE_BLOCK);
    runs.push({ alone, besideMany, stored });
    progress(
      `${database} run ${run + 1}: P4 beside ${stored} listeners ${besideMany.read.toFixed(3)} ms reading them, ${besideMany.cached.toFixed(3)} ms cached;` +
        ` with 10 stored ${alone.read.toFixed(3)} ms and ${alone.cached.toFixed(3)} ms`,
    );
  }
  const of = (state, path) => median(runs.map((r) => r[state][path]));
  return {
    listenerScale: {
      stored: runs[0].stored,
      aloneMs: Number(of('alone', 'read').toFixed(3)),
      besideManyMs: Number(of('besideMany', 'read').toFixed(3)),
      ratio: ratio(of('besideMany', 'read'), of('alone', 'read')),
      cachedAloneMs: Number(of('alone', 'cached').toFixed(3)),
      cachedBesideManyMs: Number(of('besideMany', 'cached').toFixed(3)),
      cachedRatio: ratio(of('besideMany', 'cached'), of('alone', 'cached')),
    },
  };
}

/** P6 as the issue asks: one URL answering after 5 s; 64 requests in flight, as in the throughput measures, at most 16 per URL. */
const ONE_STALLED = { slow: 1, stallMs: 5_000, delivery: { concurrency: 64, perUrlConcurrency: 16, batchSize: 500, timeoutMs: 6_000 } };
/** Eight URLs that never answer within the timeout, with the default caps, whose eight requests each would fill every slot. */
const EIGHT_DEAD = { slow: 8, stallMs: 600_000, delivery: { timeoutMs: 2_000 } };

async function stalledMeasure(database, receiver) {
  const events = Math.max(1, Math.floor(EVENTS / 4));
  const measured = {};
  for (const [key, setting] of Object.entries({ stalledReceiver: ONE_STALLED, deadReceivers: EIGHT_DEAD })) {
    const alone = [];
    const beside = [];
    for (let run = 0; run < RUNS; run++) {
      alone.push(await besideSlowReceivers(database, receiver, events, { ...setting, slow: 0 }));
      beside.push(await besideSlowReceivers(database, receiver, events, setting));
      progress(
        `${database} run ${run + 1}: P6 ${Math.round(beside.at(-1))}/s beside ${setting.slow} slow URL(s), ${Math.round(alone.at(-1))}/s alone`,
      );
    }
    measured[key] = {
      alonePerSecond: Math.round(median(alone)),
      besideStalledPerSecond: Math.round(median(beside)),
      ratio: ratio(median(beside), median(alone)),
    };
  }
  return measured;
}

/**
 * P5 runs once (a million deliveries take minutes), beside the P1 figure of the same run: with
 * Node's default heap, whose peak RSS includes the garbage V8 has not collected yet, and again with
 * the old space capped, which shows how much the worker really keeps.
 */
async function backlogMeasure(receiver, p1) {
  const drained = await backlogDrain(receiver, BACKLOG);
  progress(`postgres: P5 ${Math.round(drained.perSecond)}/s draining ${BACKLOG}, peak RSS ${Math.round(drained.peakRssMiB)} MiB`);
  const capped = await backlogDrain(receiver, BACKLOG, [`--max-old-space-size=${CAPPED_OLD_SPACE_MIB}`]);
  progress(
    `postgres: P5 ${Math.round(capped.perSecond)}/s draining ${BACKLOG} with a ${CAPPED_OLD_SPACE_MIB} MiB old space, peak RSS ${Math.round(capped.peakRssMiB)} MiB`,
  );
  const summary = ({ perSecond, peakRssMiB }) => ({
    perSecond: Math.round(perSecond),
    ofP1: p1 ? ratio(perSecond, p1) : null,
    peakRssMiB: Math.round(peakRssMiB),
  });
  return {
    backlog: { deliveries: BACKLOG, defaultHeap: summary(drained), cappedHeap: { oldSpaceMiB: CAPPED_OLD_SPACE_MIB, ...summary(capped) } },
  };
}

/** Requests before any measure, so that the first ceiling is not taken while the receiver and undici are still cold. */
const WARM_UP_REQUESTS = 20_000;

async function main() {
  const receiver = await startReceiver();
  if (MEASURES.has('p1')) await rawCeiling(receiver, WARM_UP_REQUESTS);
  const results = {
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    runs: RUNS,
    events: EVENTS,
    saves: SAVES,
    databases: {},
  };
  for (const database of DATABASES) {
    const measured = {
      ...(MEASURES.has('p1') && (await throughputMeasures(database, receiver))),
      ...((MEASURES.has('p2') || MEASURES.has('p3')) && (await latencyAndSaveMeasures(database, receiver))),
      ...(MEASURES.has('p4') && (await listenerScaleMeasure(database))),
      ...(MEASURES.has('p6') && (await stalledMeasure(database, receiver))),
    };
    if (database === 'postgres' && MEASURES.has('p5'))
      Object.assign(measured, await backlogMeasure(receiver, measured.throughput?.['standard-webhooks'].perSecond));
    results.databases[database] = measured;
    printDatabase(database, measured);
  }
  receiver.stop();
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify(results, null, 2));
  console.log(
    `\nmachine: ${results.machine.cpus} × ${results.machine.cpuModel}, ${results.machine.memoryGiB} GiB, Node ${results.machine.node}; median of ${RUNS} runs; written to ${file}`,
  );
}

const PEER_NAMES = { bullmq: 'BullMQ 6 peer (Redis)', 'pg-boss': 'pg-boss 10 peer (PostgreSQL)' };

function printDatabase(database, r) {
  console.log(`\n${database}`);
  console.log('| measure | result | reference | ratio |');
  console.log('|---|---|---|---|');
  if (r.throughput) console.log(`| P1 throughput, raw undici ceiling | ${r.ceilingPerSecond}/s | | 1.00 |`);
  for (const [mode, value] of Object.entries(r.throughput ?? {}))
    console.log(`| P1 throughput, signing ${mode} | ${value.perSecond}/s | ${r.ceilingPerSecond}/s ceiling | ${value.ofCeiling} |`);
  for (const [peer, value] of Object.entries(r.peers ?? {}))
    console.log(`| P1 throughput, ${PEER_NAMES[peer]} | ${value.perSecond}/s | ${r.ceilingPerSecond}/s ceiling | ${value.ofCeiling} |`);
  if (r.latencyMs) console.log(`| P2 commit → receiver, p50 / p99 | ${r.latencyMs.p50} / ${r.latencyMs.p99} ms | | |`);
  for (const [label, figures] of [
    ['', r],
    [', rollback journal', r.rollbackJournal],
  ]) {
    for (const key of figures?.saveMs ? ['0', '1', '10'] : [])
      console.log(
        `| P3 save() with ${key} matching listeners${label} | ${figures.saveMs[key]} ms | ${figures.saveMs.absent} ms without the module | ${figures.saveRatio[key]} |`,
      );
    for (const key of figures?.floorMs ? ['1', '10'] : [])
      console.log(
        `| P3 floor: its rows for ${key} listener(s) through the driver alone${label} | ${figures.floorMs[`floor${key}`]} ms | ${figures.floorMs.floorAbsent} ms for the Order alone | ${figures.floorRatio[key]} |`,
      );
  }
  if (r.listenerScale) {
    const { besideManyMs, aloneMs, stored, ratio: scale, cachedBesideManyMs, cachedAloneMs, cachedRatio } = r.listenerScale;
    console.log(
      `| P4 save() with 10 matching of ${stored} listeners, each reading them | ${besideManyMs} ms | ${aloneMs} ms with 10 stored | ${scale} |`,
    );
    console.log(
      `| P4 the same, the listeners in memory | ${cachedBesideManyMs} ms | ${cachedAloneMs} ms with 10 stored | ${cachedRatio} |`,
    );
  }
  if (r.backlog) {
    const { deliveries, defaultHeap, cappedHeap } = r.backlog;
    console.log(
      `| P5 draining ${deliveries} pending deliveries | ${defaultHeap.perSecond}/s, peak RSS ${defaultHeap.peakRssMiB} MiB | P1 standard-webhooks | ${defaultHeap.ofP1} |`,
    );
    console.log(
      `| P5 the same, --max-old-space-size=${cappedHeap.oldSpaceMiB} | ${cappedHeap.perSecond}/s, peak RSS ${cappedHeap.peakRssMiB} MiB | P1 standard-webhooks | ${cappedHeap.ofP1} |`,
    );
  }
  if (r.stalledReceiver) {
    const { besideStalledPerSecond, alonePerSecond, ratio: kept } = r.stalledReceiver;
    console.log(`| P6 four URLs beside one answering in 5 s | ${besideStalledPerSecond}/s | ${alonePerSecond}/s alone | ${kept} |`);
  }
  if (r.deadReceivers) {
    const { besideStalledPerSecond, alonePerSecond, ratio: kept } = r.deadReceivers;
    console.log(
      `| P6 the same beside eight URLs that never answer (default caps, 2 s timeout) | ${besideStalledPerSecond}/s | ${alonePerSecond}/s alone | ${kept} |`,
    );
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
