import { Logger, Module, type INestApplicationContext, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventEmitter2, EventEmitterModule } from '@nestjs/event-emitter';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import type { DataSource } from 'typeorm';
import {
  WEBHOOK_DELIVERY_ABANDONED,
  WEBHOOK_DELIVERY_FAILED,
  WEBHOOK_DELIVERY_SUCCEEDED,
  WEBHOOK_ENTITIES,
  WEBHOOK_EVENT_EMITTER,
  WEBHOOK_EVENTS_COMMITTED,
  WEBHOOK_LISTENER_DEACTIVATED,
  WEBHOOK_LISTENER_STATE_CHANGED,
  WEBHOOK_URL_STATE_CHANGED,
  WEBHOOK_MIGRATIONS,
  WEBHOOK_MODULE_OPTIONS,
  WebhookConfigurationError,
  WebhookDeliveryService,
  WebhookIdentityService,
  WebhookListenerService,
  WebhookModule,
  WebhookValidationError,
  type WebhookModuleOptions,
} from '../../lib/index.js';
import { buildPayload } from '../../lib/delivery/payload.js';
import { resolveWebhookOptions } from '../../lib/module/webhook-options.validation.js';
import { KeyEncryptionService } from '../../lib/signing/key-encryption.service.js';
import { generateIdentityKeyMaterial } from '../../lib/signing/key-material.js';
import { WebhookSigner } from '../../lib/signing/webhook-signer.service.js';
import { EcdsaSigningWorker } from '../../lib/signing/ecdsa-signing.worker.js';
import { verifyStandardWebhook, verifyXSignature } from '../../lib/verify/index.js';
import { AppModule } from '../readme/app.module.js';
import { webhookModule as asyncWebhookModule } from '../readme/async-options.js';
import { activeListenersFor } from '../readme/listener-search.js';
import { typeOrmOptions as migrationOptions } from '../readme/migrations.js';
import { OrderWebhooks } from '../readme/order-webhooks.service.js';
import { Order, OrderState } from '../readme/order.entity.js';
import { OrdersService } from '../readme/orders.service.js';
import { ShopWebhookController, type ShopKeys } from '../readme/receiver.controller.js';
import { startReceiver } from '../readme/receiver.js';
import { isStandardWebhookValid, isXSignatureValid } from '../readme/sdk-receiver.js';
import { WebhookAlerts } from '../readme/webhook-alerts.js';
import { answer, TestReceiver, waitFor, type ReceivedRequest } from '../src/receiver.js';

/*
 * Every fenced code block of README.md is checked. The line before a block is one of:
 *
 *   <!-- source: FILE -->          the block is FILE, whole
 *   <!-- source: FILE#NAME -->     the block is the region of FILE between `// #region NAME` and `// #endregion`
 *   <!-- checked: KIND [NAME] -->  the block is checked by this spec, by kind:
 *       install     one `npm install` of exactly the package and its peerDependencies
 *       commands    npm commands that exist (`npm install`, `npm test [-- path]`, `npm run SCRIPT` of package.json),
 *                   with environment variables that the code reads
 *       payload     the request example: the body fields the payload builder writes, in order, the header
 *                   formats, and the same field and header names as a real request of the quick start
 *       error NAME  the exact message the module gives in the scenario NAME, produced below
 *
 * Sources are files under test/readme/ (run below, against SQLite, with a real receiver on 127.0.0.1)
 * or sample/src/ (run by sample.e2e.spec.ts). A source block equals its text with `// #region` and
 * `// #endregion` lines left out, a region's common indentation removed and trailing white space
 * ignored, and with one mapping: an import of the module's sources (`../../lib/index.js`,
 * `../../lib/verify/index.js`, resolved from the file) reads `'nestjs-webhook-listener'` and
 * `'nestjs-webhook-listener/verify'` in the README, as in an application.
 *
 * Two tables are checked too: the one after `<!-- checked: options -->` (every option, with its
 * default) and the one after `<!-- checked: events -->` (every event, with its payload).
 */

const ROOT = process.cwd();
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  scripts: Record<string, string>;
  peerDependencies: Record<string, string>;
};
const SOURCE_FOLDERS = ['test/readme/', 'sample/src/'];
const PACKAGE_ENTRIES: Record<string, string> = { 'lib/index.js': PACKAGE.name, 'lib/verify/index.js': `${PACKAGE.name}/verify` };
const ERROR_SCENARIOS = ['ssrf', 'unregistered-entity', 'invalid-option', 'missing-key', 'update-not-captured'];

interface CodeBlock {
  line: number;
  lang: string;
  text: string;
  note: Note | null;
}

type Note = { kind: 'source'; file: string; region: string | null } | { kind: 'checked'; check: string; name: string | null };

function parseNote(line: string): Note | null {
  const source = /^<!-- source: ([\w./-]+?)(?:#([\w-]+))? -->$/.exec(line.trim());
  if (source) return { kind: 'source', file: source[1], region: source[2] ?? null };
  const checked = /^<!-- checked: ([\w-]+)(?: ([\w-]+))? -->$/.exec(line.trim());
  if (checked) return { kind: 'checked', check: checked[1], name: checked[2] ?? null };
  return null;
}

/** The fenced code blocks of a Markdown text, each with the note on the last non-empty line before it. */
function codeBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (/^\s*~~~/.test(lines[i])) throw new Error(`README.md line ${i + 1}: use backtick fences, which this spec checks`);
    const fence = /^\s*```(\S*)\s*$/.exec(lines[i]);
    if (!fence) continue;
    const end = lines.findIndex((line, j) => j > i && /^\s*```\s*$/.test(line));
    if (end < 0) throw new Error(`README.md line ${i + 1}: code block without an end`);
    let before = i - 1;
    while (before >= 0 && lines[before].trim() === '') before--;
    blocks.push({
      line: i + 1,
      lang: fence[1],
      text: lines.slice(i + 1, end).join('\n'),
      note: before >= 0 ? parseNote(lines[before]) : null,
    });
    i = end;
  }
  return blocks;
}

const BLOCKS = codeBlocks(README);

function checkedBlocks(check: string): CodeBlock[] {
  return BLOCKS.filter((block) => block.note?.kind === 'checked' && block.note.check === check);
}

function errorBlock(name: string): string {
  const blocks = BLOCKS.filter((block) => block.note?.kind === 'checked' && block.note.check === 'error' && block.note.name === name);
  if (blocks.length !== 1) throw new Error(`README.md needs one block marked <!-- checked: error ${name} -->, has ${blocks.length}`);
  return blocks[0].text;
}

const isRegionMarker = (line: string) => /^\s*\/\/ #(region|endregion)\b/.test(line);

/** The README text of a source note: the file or region, markers left out, imports of the module mapped to the package. */
function expectedSourceText(file: string, region: string | null): string {
  const path = join(ROOT, file);
  if (!existsSync(path)) throw new Error(`${file} does not exist`);
  let lines = readFileSync(path, 'utf8').split('\n');
  if (region !== null) {
    const starts = lines.flatMap((line, index) => (line.trim() === `// #region ${region}` ? [index] : []));
    if (starts.length !== 1) throw new Error(`${file} needs one "// #region ${region}", has ${starts.length}`);
    const end = lines.findIndex((line, index) => index > starts[0] && line.trim() === '// #endregion');
    if (end < 0) throw new Error(`${file}: region ${region} has no "// #endregion"`);
    lines = lines.slice(starts[0] + 1, end);
  }
  lines = lines.filter((line) => !isRegionMarker(line));
  const indent = Math.min(...lines.filter((line) => line.trim()).map((line) => /^ */.exec(line)![0].length));
  return normalize(
    lines
      .map((line) => line.slice(indent))
      .join('\n')
      .replace(/(from |import\()'(\.\.?\/[^']+)'/g, (whole, keyword: string, specifier: string) => {
        const target = relative(ROOT, resolve(dirname(path), specifier));
        return PACKAGE_ENTRIES[target] ? `${keyword}'${PACKAGE_ENTRIES[target]}'` : whole;
      }),
  );
}

function normalize(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
    .trim();
}

/** The rows of the Markdown table right after a note, as cells. */
function tableAfter(note: string): string[][] {
  const lines = README.split('\n');
  const at = lines.findIndex((line) => line.trim() === note);
  if (at < 0) throw new Error(`README.md has no ${note}`);
  let i = at + 1;
  while (lines[i].trim() === '') i++;
  const rows: string[][] = [];
  for (; i < lines.length && lines[i].startsWith('|'); i++) {
    rows.push(
      lines[i]
        .replace(/\\\|/g, '\u0000')
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.replace(/\u0000/g, '|').trim()),
    );
  }
  if (rows.length < 3 || !/^[-| :]+$/.test(rows[1].join('|'))) throw new Error(`README.md: no table after ${note}`);
  return rows.slice(2);
}

const firstCode = (cell: string): string | null => /`([^`]+)`/.exec(cell)?.[1] ?? null;

/** Every leaf of the resolved options, by dotted path. */
function flatten(value: unknown, path = ''): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { [path]: value };
  return Object.assign({}, ...Object.entries(value).map(([key, inner]) => flatten(inner, path ? `${path}.${key}` : key)));
}

/** The field names of a payload cell like `{ deliveryId, eventId }`; `null` for "the same". */
function payloadFields(cell: string): string[] | null {
  const fields = /\{([^}]*)\}/.exec(cell);
  return fields ? fields[1].split(',').map((field) => field.trim()) : null;
}

/** The request of the README's payload example: request line, headers and body. */
function payloadExample(): { requestLine: string; headers: Record<string, string>; body: Record<string, unknown>; bodyText: string } {
  const blocks = checkedBlocks('payload');
  if (blocks.length !== 1) throw new Error(`README.md needs one block marked <!-- checked: payload -->, has ${blocks.length}`);
  const [head, bodyText] = blocks[0].text.split('\n\n');
  const [requestLine, ...headerLines] = head.split('\n');
  const headers = Object.fromEntries(
    headerLines.map((line) => {
      const colon = line.indexOf(': ');
      return [line.slice(0, colon), line.slice(colon + 2)];
    }),
  );
  return { requestLine, headers, body: JSON.parse(bodyText), bodyText };
}

/** Names that appear in the repository's code, for environment variables named in commands. */
function codeMentions(name: string): boolean {
  const folders = ['lib', 'test/src', 'test/e2e', 'scripts', 'bench', 'sample/src'];
  const files = folders.flatMap((folder) =>
    readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
      .filter((file) => /\.(ts|mjs|js|cjs)$/.test(file))
      .map((file) => join(ROOT, folder, file)),
  );
  return files.some((file) => readFileSync(file, 'utf8').includes(name));
}

describe('README.md code blocks', () => {
  it('has a source or check note before every code block', () => {
    expect(BLOCKS.length).toBeGreaterThan(10);
    const unchecked = BLOCKS.filter((block) => block.note === null).map((block) => `line ${block.line}`);
    expect(unchecked).toEqual([]);
    const known = ['install', 'commands', 'payload', 'error'];
    const unknown = BLOCKS.filter((block) => block.note?.kind === 'checked' && !known.includes(block.note.check));
    expect(unknown.map((block) => `line ${block.line}`)).toEqual([]);
    const errors = BLOCKS.flatMap((block) => (block.note?.kind === 'checked' && block.note.check === 'error' ? [block.note.name] : []));
    expect([...errors].sort()).toEqual([...ERROR_SCENARIOS].sort());
  });

  it.each(BLOCKS.filter((block) => block.note?.kind === 'source').map((block) => [`line ${block.line}`, block] as const))(
    'the block at %s equals its source',
    (_at, block) => {
      const note = block.note as Extract<Note, { kind: 'source' }>;
      expect(SOURCE_FOLDERS.some((folder) => note.file.startsWith(folder))).toBe(true);
      expect(block.lang).toBe('ts');
      expect(normalize(block.text)).toBe(expectedSourceText(note.file, note.region));
    },
  );

  it('cites every file of test/readme/', () => {
    const cited = new Set(BLOCKS.flatMap((block) => (block.note?.kind === 'source' ? [block.note.file] : [])));
    const files = readdirSync(join(ROOT, 'test/readme')).map((file) => `test/readme/${file}`);
    expect(files.filter((file) => !cited.has(file))).toEqual([]);
  });

  it('installs exactly the package and its peer dependencies', () => {
    const [install, ...more] = checkedBlocks('install');
    expect(more).toEqual([]);
    expect(install.lang).toBe('bash');
    const [npm, command, ...names] = install.text.trim().split(/\s+/);
    expect([npm, command]).toEqual(['npm', 'install']);
    expect([...names].sort()).toEqual([PACKAGE.name, ...Object.keys(PACKAGE.peerDependencies)].sort());
  });

  it('names only npm commands that exist, with environment variables the code reads', () => {
    const blocks = checkedBlocks('commands');
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) {
      expect(block.lang).toBe('bash');
      const commands = block.text
        .split('\n')
        .map((line) => line.replace(/\s+#.*$/, '').trim())
        .filter((line) => line && !line.startsWith('#'));
      expect(commands.length).toBeGreaterThan(0);
      for (const line of commands) {
        const words = line.split(/\s+/);
        while (/^[A-Z][A-Z0-9_]*=\S*$/.test(words[0])) {
          const name = words.shift()!.split('=')[0];
          expect({ line, name, read: codeMentions(name) }).toEqual({ line, name, read: true });
        }
        const [npm, command, ...rest] = words;
        expect({ line, npm }).toEqual({ line, npm: 'npm' });
        if (command === 'install') expect({ line, rest }).toEqual({ line, rest: [] });
        else if (command === 'test') {
          const [separator, ...paths] = rest;
          if (separator !== undefined) expect(separator).toBe('--');
          for (const path of paths) expect({ line, path, exists: existsSync(join(ROOT, path)) }).toEqual({ line, path, exists: true });
        } else {
          expect({ line, command }).toEqual({ line, command: 'run' });
          expect({ line, script: rest[0], exists: rest[0] in PACKAGE.scripts }).toEqual({ line, script: rest[0], exists: true });
          expect({ line, rest: rest.slice(1) }).toEqual({ line, rest: [] });
        }
      }
    }
  });

  it('shows a payload with exactly the fields the module sends, in order, and headers in their formats', async () => {
    const example = payloadExample();
    expect(example.requestLine).toMatch(/^POST \/\S* HTTP\/1\.1$/);
    const built = JSON.parse(
      buildPayload({
        eventId: 1,
        entityId: '2',
        numericEntityId: true,
        listenerEntityId: 3,
        entityName: 'Order',
        spaceId: 4,
        listenerId: 5,
        occurredAt: Date.now(),
        state: 'SHIPPED',
        includeState: true,
      }),
    );
    expect(Object.keys(example.body)).toEqual(Object.keys(built));
    expect(example.bodyText).toBe(JSON.stringify(example.body));
    expect(example.body.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/);

    const options = resolveWebhookOptions({});
    const keys = generateIdentityKeyMaterial();
    const signed = await new WebhookSigner(options, new KeyEncryptionService(options), new EcdsaSigningWorker(options)).headers(
      keys,
      'msg_1',
      example.bodyText,
    );
    expect(Object.keys(example.headers).sort()).toEqual(['content-type', 'user-agent', ...Object.keys(signed)].sort());
    expect(example.headers['content-type']).toBe('application/json');
    expect(example.headers['user-agent']).toBe(PACKAGE.name);
    expect(example.headers['x-signature']).toMatch(/^algorithm=SHA256withECDSA, keyId=[0-9a-f-]{36}, signature=[A-Za-z0-9+/]+={0,2}$/);
    expect(example.headers['webhook-id']).toMatch(/^msg_\d+$/);
    expect(example.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    const sentAt = Number(example.headers['webhook-timestamp']);
    const changedAt = Date.parse(String(example.body.timestamp).replace('+0000', 'Z')) / 1000;
    expect(sentAt - changedAt).toBeGreaterThanOrEqual(0);
    expect(sentAt - changedAt).toBeLessThan(60);
  });

  it('lists every option with its default', () => {
    const defaults = flatten(resolveWebhookOptions(undefined));
    const rows = tableAfter('<!-- checked: options -->');
    const documented = rows.map(([option]) => firstCode(option));
    expect([...documented].sort()).toEqual(Object.keys(defaults).sort());
    for (const [option, defaultCell] of rows) {
      const path = firstCode(option)!;
      const literal = firstCode(defaultCell);
      const value = literal === null ? null : JSON.parse(literal.replace(/'/g, '"'));
      expect({ path, default: value }).toEqual({ path, default: defaults[path] });
    }
  });

  it('lists every event the module emits', () => {
    const names = tableAfter('<!-- checked: events -->').map(([name]) => firstCode(name));
    expect(names).toEqual([
      WEBHOOK_DELIVERY_SUCCEEDED,
      WEBHOOK_DELIVERY_FAILED,
      WEBHOOK_DELIVERY_ABANDONED,
      WEBHOOK_LISTENER_DEACTIVATED,
      WEBHOOK_LISTENER_STATE_CHANGED,
      WEBHOOK_URL_STATE_CHANGED,
      WEBHOOK_EVENTS_COMMITTED,
    ]);
  });
});

/** Collects what the Nest loggers write, so that warnings can be compared with the README. */
class CapturingLogger implements LoggerService {
  readonly warnings: string[] = [];
  log(): void {}
  debug(): void {}
  verbose(): void {}
  warn(message: unknown): void {
    this.warnings.push(String(message));
  }
  error(message: unknown, ...rest: unknown[]): void {
    console.error(message, ...rest);
  }
}

describe('the README quick start, run on SQLite with real receivers on 127.0.0.1', () => {
  const logger = new CapturingLogger();
  const receiverKeys: ShopKeys = { publicKey: '', secret: '' };
  const emitted: { name: string; payload: Record<string, unknown> }[] = [];
  let receiverApp: INestApplicationContext & { close(): Promise<void> };
  let receiverUrl: string;
  let controller: ShopWebhookController;
  let raw: TestReceiver;
  let shop: INestApplicationContext;

  @Module({ imports: [AppModule, EventEmitterModule.forRoot()], providers: [WebhookAlerts] })
  class QuickStartWithEvents {}

  beforeAll(async () => {
    Logger.overrideLogger(logger);
    const app = await startReceiver(receiverKeys, 0);
    receiverApp = app;
    receiverUrl = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}/webhooks/orders`;
    controller = app.get(ShopWebhookController);
    raw = await new TestReceiver().script('/gone', answer(410)).start();
    shop = await NestFactory.createApplicationContext(QuickStartWithEvents, { logger, abortOnError: false });
    const emitter = shop.get<EventEmitter2>(WEBHOOK_EVENT_EMITTER);
    expect(emitter).toBe(shop.get(EventEmitter2));
    emitter.onAny((name, payload) => emitted.push({ name: String(name), payload: payload as Record<string, unknown> }));
  });

  afterAll(async () => {
    await shop?.close();
    await receiverApp?.close();
    await raw?.stop();
  });

  let firstRequest: ReceivedRequest;

  it('delivers a save() made in a transaction to the README receiver, which verifies both signatures; a rollback sends nothing', async () => {
    const orders = shop.get(OrdersService);
    const subscription = await shop.get(OrderWebhooks).subscribe(7, receiverUrl);
    Object.assign(receiverKeys, { publicKey: subscription.publicKey, secret: subscription.secret });
    const rawSubscription = await shop.get(OrderWebhooks).subscribe(7, raw.url('/orders'));

    const rolledBack = await orders.create(7);
    const dataSource = shop.get<DataSource>(getDataSourceToken());
    await expect(
      dataSource.transaction(async (manager) => {
        await manager.save(Order, { ...rolledBack, state: OrderState.SHIPPED });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    const order = await orders.create(7);
    await orders.ship(7, order.id);

    [firstRequest] = await waitFor(() => raw.to('/orders').length > 0 && raw.to('/orders'), 'the request to the raw receiver');
    await waitFor(() => controller.received.length > 0, 'the request to the README receiver');
    expect(controller.received).toEqual([
      {
        eventId: expect.any(Number),
        entityId: order.id,
        listenerEntityId: 1001,
        listenerEntityTechnicalName: 'Order',
        spaceId: 7,
        webhookListenerId: subscription.listenerId,
        timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/),
        state: 'SHIPPED',
      },
    ]);
    const deliveries = shop.get(WebhookDeliveryService);
    const succeeded = await waitFor(async () => {
      const found = await deliveries.searchDeliveries(7, {});
      return found.every((delivery) => delivery.state === 'SUCCEEDED') && found;
    }, 'both deliveries answered 2xx');
    expect(succeeded).toHaveLength(2);
    expect(raw.to('/orders')).toHaveLength(1);

    const { rawBody, headers } = firstRequest;
    const tampered = Buffer.from(rawBody.toString('utf8').replace('SHIPPED', 'PENDING'));
    expect(verifyXSignature(headers['x-signature'], rawBody, rawSubscription.publicKey)).toBe(true);
    expect(verifyStandardWebhook(headers, rawBody, rawSubscription.secret)).toBe(true);
    expect(isXSignatureValid(String(headers['x-signature']), rawBody, rawSubscription.publicKey)).toBe(true);
    expect(isXSignatureValid(String(headers['x-signature']), tampered, rawSubscription.publicKey)).toBe(false);
    expect(isXSignatureValid('algorithm=SHA256withECDSA, keyId=x, signature=AAAA', rawBody, rawSubscription.publicKey)).toBe(false);
    expect(isStandardWebhookValid(headers, rawBody, rawSubscription.secret)).toBe(true);
    expect(isStandardWebhookValid(headers, tampered, rawSubscription.secret)).toBe(false);
    expect(isStandardWebhookValid(headers, rawBody, subscription.secret)).toBe(false);
  });

  it('sends what the README payload example shows', () => {
    const example = payloadExample();
    expect(Object.keys(JSON.parse(firstRequest.rawBody.toString('utf8')))).toEqual(Object.keys(example.body));
    const transport = ['host', 'connection', 'content-length', 'transfer-encoding'];
    const sent = Object.keys(firstRequest.headers).filter((name) => !transport.includes(name));
    expect(sent.sort()).toEqual(Object.keys(example.headers).sort());
    expect(firstRequest.headers['user-agent']).toBe(example.headers['user-agent']);
  });

  it('sends a change made with update() only when it is published by hand, and warns about update() as the README says', async () => {
    const orders = shop.get(OrdersService);
    const deliveries = shop.get(WebhookDeliveryService);
    const before = await deliveries.countDeliveries(7);
    const unpublished = await orders.create(7);
    await shop.get<DataSource>(getDataSourceToken()).getRepository(Order).update({ id: unpublished.id }, { state: OrderState.SHIPPED });
    expect(await deliveries.countDeliveries(7)).toBe(before);
    expect(logger.warnings).toContain(errorBlock('update-not-captured'));

    const order = await orders.create(7);
    await orders.cancel(7, order.id);
    await waitFor(() => controller.received.length === 2, 'the published change');
    expect(controller.received[1]).toMatchObject({ entityId: order.id, state: 'CANCELLED' });
    // Nothing is published for another tenant's order, for one that does not exist, nor for a second cancel.
    const published = await deliveries.countDeliveries(7);
    expect(published).toBeGreaterThan(before);
    await orders.cancel(7, (await orders.create(8)).id);
    await orders.cancel(7, 2_000_000_000);
    await orders.cancel(7, order.id);
    expect(await deliveries.countDeliveries(7)).toBe(published);
  });

  it('abandons a delivery answered 410 Gone and deactivates its listener, with the events the README lists', async () => {
    const { listenerId } = await shop.get(OrderWebhooks).subscribe(8, raw.url('/gone'));
    const order = await shop.get(OrdersService).create(8);
    await shop.get(OrdersService).ship(8, order.id);
    const abandoned = new RegExp(`^Delivery \\d+ of listener ${listenerId} abandoned after 1 attempts$`);
    const deactivated = `Listener ${listenerId} of space 8 deactivated: receiver answered 410 Gone`;
    await waitFor(
      () => logger.warnings.some((warning) => abandoned.test(warning)) && logger.warnings.includes(deactivated),
      'the abandonment and the deactivation logged by WebhookAlerts',
    );

    let previous: string[] = [];
    const documented = new Map(
      tableAfter('<!-- checked: events -->').map(([name, payload]) => {
        previous = payloadFields(payload) ?? previous;
        return [firstCode(name)!, previous];
      }),
    );
    const seen = new Set(emitted.map(({ name }) => name));
    expect([...seen].sort()).toEqual(
      [
        WEBHOOK_DELIVERY_SUCCEEDED,
        WEBHOOK_DELIVERY_ABANDONED,
        WEBHOOK_LISTENER_DEACTIVATED,
        WEBHOOK_LISTENER_STATE_CHANGED,
        WEBHOOK_EVENTS_COMMITTED,
      ].sort(),
    );
    for (const { name, payload } of emitted)
      expect({ name, fields: Object.keys(payload).sort() }).toEqual({ name, fields: [...documented.get(name)!].sort() });
  });

  it('finds listeners with the README search', async () => {
    const listeners = shop.get(WebhookListenerService);
    const found = await activeListenersFor(listeners, 7, '127.0.0.1');
    expect(found).toHaveLength(2);
    expect(found[0].id).toBeGreaterThan(found[1].id);
    expect(await activeListenersFor(listeners, 8, '127.0.0.1')).toEqual([]);
  });

  it('refuses a listener for an entity that is not registered, with the README message', async () => {
    const error = await shop
      .get(WebhookListenerService)
      .create(7, { name: 'Invoices', entity: 'Invoice', url: receiverUrl })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WebhookValidationError);
    expect((error as Error).message).toBe(errorBlock('unregistered-entity'));
  });
});

describe('the README troubleshooting messages', () => {
  function bootShop(options: WebhookModuleOptions, database = ':memory:'): Promise<INestApplicationContext> {
    @Module({
      imports: [
        TypeOrmModule.forRoot({ type: 'better-sqlite3', database, entities: [Order, ...WEBHOOK_ENTITIES], synchronize: true }),
        WebhookModule.forRoot(options),
      ],
    })
    class ShopModule {}
    return NestFactory.createApplicationContext(ShopModule, { logger: false, abortOnError: false });
  }

  it('refuses a loopback URL with the default security options', async () => {
    const app = await bootShop({ worker: { enabled: false } });
    try {
      const error = await app
        .get(WebhookListenerService)
        .create(7, { name: 'Local', entity: 'Order', url: 'http://127.0.0.1:3000/webhooks/orders' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WebhookValidationError);
      expect((error as Error).message).toBe(errorBlock('ssrf'));
    } finally {
      await app.close();
    }
  });

  it('stops the boot on an invalid option', async () => {
    const error = await bootShop({ signing: { keyEncryptionKey: 'change-me' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WebhookConfigurationError);
    expect((error as Error).message).toBe(errorBlock('invalid-option'));
  });

  it('cannot open identities stored encrypted without the keyEncryptionKey', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'readme-spec-'));
    try {
      const database = join(folder, 'shop.sqlite');
      const withKey = await bootShop(
        { worker: { enabled: false }, signing: { keyEncryptionKey: randomBytes(32).toString('base64') } },
        database,
      );
      const identity = await withKey.get(WebhookIdentityService).create(7, { name: 'Shop signing key' });
      await withKey.close();
      const withoutKey = await bootShop({ worker: { enabled: false } }, database);
      try {
        const error = await withoutKey
          .get(WebhookIdentityService)
          .revealSecret(7, identity.id)
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(WebhookConfigurationError);
        expect((error as Error).message).toBe(errorBlock('missing-key'));
      } finally {
        await withoutKey.close();
      }
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe('the README configuration examples', () => {
  it('boots with the forRootAsync example, whose options take effect', async () => {
    process.env.WEBHOOK_KEY_ENCRYPTION_KEY = randomBytes(32).toString('base64');
    @Module({
      imports: [
        TypeOrmModule.forRoot({ type: 'better-sqlite3', database: ':memory:', entities: [Order, ...WEBHOOK_ENTITIES], synchronize: true }),
        asyncWebhookModule,
      ],
    })
    class AsyncModule {}
    const app = await NestFactory.createApplicationContext(AsyncModule, { logger: false, abortOnError: false });
    try {
      expect(app.get(WEBHOOK_MODULE_OPTIONS)).toEqual({
        signing: { keyEncryptionKey: process.env.WEBHOOK_KEY_ENCRYPTION_KEY },
        worker: { enabled: true },
      });
      await app.get(WebhookIdentityService).create(7, { name: 'Shop signing key' });
      const [stored] = await app.get<DataSource>(getDataSourceToken()).query('SELECT secret FROM webhook_identity');
      expect(stored.secret).toMatch(/^enc:v1:/);
    } finally {
      delete process.env.WEBHOOK_KEY_ENCRYPTION_KEY;
      await app.close();
    }
  });

  it('lists the module migrations for PostgreSQL in the migrations example', () => {
    expect(migrationOptions.type).toBe('postgres');
    expect(migrationOptions.entities).toEqual([Order, ...WEBHOOK_ENTITIES]);
    expect((migrationOptions as { migrations: unknown[] }).migrations).toEqual([...WEBHOOK_MIGRATIONS.postgres]);
  });
});
