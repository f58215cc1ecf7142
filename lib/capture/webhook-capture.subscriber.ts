import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type {
  DataSource,
  EntityManager,
  EntityMetadata,
  EntitySubscriberInterface,
  InsertEvent,
  ObjectLiteral,
  QueryRunner,
  RecoverEvent,
  RemoveEvent,
  SoftRemoveEvent,
  TransactionCommitEvent,
  TransactionRollbackEvent,
  TransactionStartEvent,
  UpdateEvent,
} from 'typeorm';
import { WEBHOOK_DATA_SOURCE, WEBHOOK_RESOLVED_OPTIONS } from '../module/webhook.constants.js';
import type { ResolvedWebhookOptions } from '../module/webhook-options.interface.js';
import { WebhookEntityRegistry, type RegisteredWebhookEntity } from '../registry/webhook-entity.registry.js';
import { reopenTransactionEndedBySqlite, transactionDepth, type DriverStatement } from '../persistence/transaction.js';
import { WebhookTransactionEndedError } from '../errors/webhook.errors.js';
import { isId } from '../validation/input.validation.js';
import { ChangeRecorder, fitsInEvent, type EntityChange } from './change-recorder.service.js';
import { SharedConnectionWrites } from './shared-connection.writes.js';
import { hasKey, keyAtInsertOf, storable, withKeyAtInsert } from './insert-keys.js';
import { WriteStarts } from './write-starts.js';
import { CommitNotifier } from './commit-notifier.js';
import { ListenerMatchCache } from './listener-match.cache.js';
import { TransactionWatch } from './transaction-watch.js';
import { StatementWatch } from './statement-watch.js';

type RowEvent = InsertEvent<ObjectLiteral> | UpdateEvent<ObjectLiteral> | RemoveEvent<ObjectLiteral>;
type ColumnMetadata = EntityMetadata['columns'][number];

/** The captures of the applications running on each DataSource, earliest first (a host may share one between several). */
const liveCaptures = new WeakMap<DataSource, WebhookCaptureSubscriber[]>();

/** A write as the capture sees it. */
interface CapturedWrite {
  /** The row after the write (for a removal, as it was). */
  row: ObjectLiteral;
  /** The row before an update. */
  before?: ObjectLiteral;
  stateChanged: boolean;
  /** The object TypeORM passed to the hooks before and after the write. */
  written?: ObjectLiteral;
  /** A removal, soft removal or recovery, which is not looked up afterwards (see ChangeRecorder.recordOnSharedConnection). */
  removal?: boolean;
  /** An insert, whose generated key SQLite may have reported wrong (see SharedConnectionWrites.insertedRow). */
  inserted?: boolean;
  knownId?: unknown;
}

/**
 * Sees every write TypeORM reports for a webhook entity and records the matching events in the
 * same transaction (on better-sqlite3, where that transaction may not be the one open at the
 * capture, see ChangeRecorder.recordOnSharedConnection). Registered once on the module's DataSource.
 */
@Injectable()
export class WebhookCaptureSubscriber implements EntitySubscriberInterface, OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('WebhookCapture');
  /** Transactions SQLite rolled back whole from inside a savepoint, reopened empty: their commit is refused. */
  private readonly endedBySqlite = new WeakSet<QueryRunner>();
  private readonly writeStarts = new WriteStarts();
  /** Warnings given once per entity, by kind and entity name. */
  private readonly warnedOnce = new Set<string>();
  /** On better-sqlite3, whose one connection TypeORM shares between all transactions. */
  private readonly sharedConnectionWrites =
    this.dataSource.options.type === 'better-sqlite3' ? new SharedConnectionWrites(this.dataSource) : null;

  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource,
    @Inject(WEBHOOK_RESOLVED_OPTIONS) private readonly options: ResolvedWebhookOptions,
    private readonly registry: WebhookEntityRegistry,
    private readonly recorder: ChangeRecorder,
    private readonly notifier: CommitNotifier,
    private readonly cache: ListenerMatchCache,
    private readonly transactionWatch: TransactionWatch,
    private readonly statementWatch: StatementWatch,
  ) {}

  /** Saves made while the application starts are recorded too: by this capture unless another is on the DataSource. */
  onModuleInit(): void {
    if (!this.dataSource.subscribers.some((subscriber) => subscriber instanceof WebhookCaptureSubscriber)) {
      this.dataSource.subscribers.push(this);
    }
  }

  /** Counted among the running applications only once started: one whose start failed never shuts down. */
  onApplicationBootstrap(): void {
    liveCaptures.set(this.dataSource, [...(liveCaptures.get(this.dataSource) ?? []), this]);
    this.attachCaptureInCharge();
  }

  /**
   * The capture stays on the DataSource after the application has shut down, unless another
   * application of the module on it is still running: until TypeORM has closed it, which Nest does
   * after this module's shutdown hooks, a save still commits, and its event with it, for the next
   * instance to deliver.
   */
  onApplicationShutdown(): void {
    liveCaptures.set(
      this.dataSource,
      (liveCaptures.get(this.dataSource) ?? []).filter((capture) => capture !== this),
    );
    this.attachCaptureInCharge();
  }

  /**
   * One capture per DataSource records: the earliest of the applications still running on it, else
   * the last one attached, which stays until the DataSource closes or another application starts.
   */
  private attachCaptureInCharge(): void {
    const inCharge = liveCaptures.get(this.dataSource)?.[0];
    const subscribers = this.dataSource.subscribers;
    const attached = subscribers.findIndex((subscriber) => subscriber instanceof WebhookCaptureSubscriber);
    if (!inCharge || subscribers[attached] === inCharge) return;
    if (attached >= 0) subscribers.splice(attached, 1, inCharge);
    else subscribers.push(inCharge);
  }

  // The hooks return a promise only when something may be written: TypeORM awaits the promises
  // its subscribers return, and a save() that concerns no listener need not wait for one.

  beforeInsert(event: InsertEvent<ObjectLiteral>): Promise<void> | undefined {
    return this.beforeWrite(event, insertWrite);
  }

  beforeUpdate(event: UpdateEvent<ObjectLiteral>): Promise<void> | undefined {
    return this.beforeWrite(event, updateWrite);
  }

  beforeRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> | undefined {
    return this.beforeWrite(event, removalWrite);
  }

  beforeSoftRemove(event: SoftRemoveEvent<ObjectLiteral>): Promise<void> | undefined {
    return this.beforeWrite(event, removalWrite);
  }

  beforeRecover(event: RecoverEvent<ObjectLiteral>): Promise<void> | undefined {
    return this.beforeWrite(event, removalWrite);
  }

  afterInsert(event: InsertEvent<ObjectLiteral>): Promise<void> | undefined {
    const entity = this.registry.findByTarget(event.metadata.target);
    return entity && this.capture(event, entity, insertWrite(event));
  }

  afterUpdate(event: UpdateEvent<ObjectLiteral>): Promise<void> | undefined {
    const entity = this.registry.findByTarget(event.metadata.target);
    if (!entity || !event.entity) return;
    const write = updateWrite(event, entity);
    if (!write) {
      this.warnUncapturedUpdate(entity, event.entity);
      return;
    }
    return this.capture(event, entity, write);
  }

  afterRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> | undefined {
    return this.captureRemoval(event);
  }

  afterSoftRemove(event: SoftRemoveEvent<ObjectLiteral>): Promise<void> | undefined {
    return this.captureRemoval(event);
  }

  afterRecover(event: RecoverEvent<ObjectLiteral>): Promise<void> | undefined {
    return this.captureRemoval(event);
  }

  afterQuery(event: { queryRunner: QueryRunner; query: string; success: boolean }): void {
    this.statementWatch.statementAnswered(event.queryRunner, event.query, event.success);
  }

  beforeTransactionStart(event: TransactionStartEvent): void {
    this.transactionWatch.levelOpens(event.queryRunner);
  }

  afterTransactionStart(event: TransactionStartEvent): void {
    this.transactionWatch.levelChanged(event.queryRunner);
    this.cache.transactionBegins(event.queryRunner);
  }

  /** Refuses, until it is rolled back, the commit of a transaction that SQLite rolled back whole (a rejection: TypeORM collects it with the other subscribers'). */
  beforeTransactionCommit(event: TransactionCommitEvent): Promise<void> | undefined {
    if (transactionDepth(event.queryRunner) === 1 && this.endedBySqlite.has(event.queryRunner)) {
      return Promise.reject(
        new WebhookTransactionEndedError(
          'SQLite had rolled back this whole transaction after an error in one of its savepoints (a full disk, for one); what was written before that is gone, so the rest is not committed either',
        ),
      );
    }
    this.sharedConnectionWrites?.transactionEnds(event.queryRunner);
    return undefined;
  }

  afterTransactionCommit(event: TransactionCommitEvent): void {
    this.transactionWatch.levelChanged(event.queryRunner);
    this.notifier.committed(event.queryRunner);
  }

  beforeTransactionRollback(event: TransactionRollbackEvent): void {
    this.transactionWatch.rollbackBegins(event.queryRunner);
    this.sharedConnectionWrites?.transactionEnds(event.queryRunner);
    const depth = transactionDepth(event.queryRunner);
    if (depth === 1) this.endedBySqlite.delete(event.queryRunner);
    if (reopenTransactionEndedBySqlite(event.queryRunner)) {
      this.logger.warn(
        'SQLite had already rolled back the whole transaction after an error (a full disk, for one); it was reopened empty so that TypeORM can finish its rollback',
      );
      // Rolling back a savepoint: the transaction around it goes on, empty, and must not commit.
      if (depth > 1) this.endedBySqlite.add(event.queryRunner);
    }
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    this.transactionWatch.levelChanged(event.queryRunner);
    this.notifier.rolledBack(event.queryRunner);
  }

  private captureRemoval(event: RemoveEvent<ObjectLiteral>): Promise<void> | undefined {
    const entity = this.registry.findByTarget(event.metadata.target);
    if (!entity) return;
    const write = removalWrite(event);
    if (!write) {
      this.warnUncapturedRemoval(entity);
      return;
    }
    return this.capture(event, entity, write);
  }

  /**
   * On the shared connection, notes which transaction (if any) was open as a write of a webhook
   * entity began. Before the row is written, a change that listeners match but whose id or state is
   * longer than an event holds fails its save(): a transaction that catches the error then keeps
   * neither the row nor an event. Only such a change waits for the listeners here.
   */
  private beforeWrite<E extends RowEvent>(
    event: E,
    describeWrite: (event: E, entity: RegisteredWebhookEntity) => CapturedWrite | null,
  ): Promise<void> | undefined {
    const entity = this.registry.findByTarget(event.metadata.target);
    if (!entity || !event.entity) return;
    this.writeStarts.begins(event.entity, {
      keyAtInsert: describeWrite === insertWrite ? keyAtInsertOf(event.entity, event.metadata) : undefined,
      openTransaction: this.sharedConnectionWrites?.openTransaction(),
    });
    const write = describeWrite(event, entity);
    if (!write || this.nobodyListens(entity, write.row)) return;
    // A generated id is not known yet; a state that is too long is refused all the same.
    const entityId = entityIdOf(event.metadata, write.row, write.before, write.knownId) ?? 'with an id to be generated';
    const state = String(write.row[entity.stateProperty] ?? '');
    if (fitsInEvent(entityId, state)) return;
    // What else the change lacks is logged after the write, as for any change.
    const spaceId = this.spaceIdIn(entity, write.row);
    if (spaceId === null) return;
    return this.recorder.refuseUnstorable(event.manager, { entity, entityId, spaceId, state, stateChanged: write.stateChanged });
  }

  private capture(event: RowEvent, entity: RegisteredWebhookEntity, write: CapturedWrite): Promise<void> | undefined {
    // A row without its key is described all the same, for its warning.
    if (hasKey(event.metadata, write.row) && this.nobodyListens(entity, write.row)) return;
    const { before, written } = write;
    let row = write.row;
    const writes = this.sharedConnectionWrites;
    // After orIgnore() or orUpdate(), TypeORM reports every row it was given, written or not, and
    // may give the key of one to another (a row it skipped gets none, or that of the next one).
    const maybeSkipped = write.inserted === true && this.statementWatch.lastInsertMayHaveSkippedRows(event.queryRunner);
    const keyFoundLater = maybeSkipped && !writes;
    let change = this.describeChange(event.metadata, entity, row, before, write.stateChanged, write.knownId, keyFoundLater);
    if (!change || this.recorder.surelyUnmatched(change)) return;
    const checked = entity.spaceProperty === null ? [entity.stateProperty] : [entity.stateProperty, entity.spaceProperty];
    if (writes && write.inserted) {
      const inserted = writes.insertedRow(event.metadata, row, checked, this.writeStarts.of(row)?.keyAtInsert);
      if (!inserted) {
        if (!maybeSkipped) {
          this.logger.warn(
            `An inserted or upserted ${entity.name} was found neither by the key SQLite reported nor by a unique constraint of its values (its transaction rolled back?): its change was not published`,
          );
        }
        if (written) this.writeStarts.forget(written);
        return;
      }
      if (inserted !== row) {
        row = inserted;
        change = { ...change, entityId: entityIdOf(event.metadata, row, before, write.knownId) ?? change.entityId };
      }
    }
    const recorded = writes
      ? this.recorder
          .recordOnSharedConnection(
            event.manager,
            change,
            () => (written === undefined ? undefined : writes.ranInOpenTransaction(this.writeStarts.of(written)?.openTransaction)),
            write.removal ? null : () => rowAsChanged(this.dataSource, event.metadata, row, before ? [entity.stateProperty] : []),
          )
          .finally(() => written && this.writeStarts.forget(written))
      : this.recorder.recordJoining(event.manager, change, {
          inTurn: true,
          resolve: keyFoundLater ? (manager, reported) => this.heldChange(manager, event.metadata, row, checked, reported) : undefined,
        });
    return recorded.then(() => undefined);
  }

  /**
   * The change of an inserted row the database may have skipped, if a row holds the state and space
   * given. A key given with the row is taken as given (TypeORM may report another row's key for a
   * skipped one). A key to be generated is looked for by the values given of each unique constraint
   * declared on the entity, which must all find the same row; without such a constraint, the key
   * TypeORM reported is checked. `null` when no row is found so.
   */
  private async heldChange(
    manager: EntityManager,
    metadata: EntityMetadata,
    reported: ObjectLiteral,
    checked: readonly string[],
    change: EntityChange,
  ): Promise<EntityChange | null> {
    const keyAtInsert = this.writeStarts.of(reported)?.keyAtInsert;
    const row = withKeyAtInsert(metadata, reported, keyAtInsert);
    const checkedColumns = checked.map((property) => metadata.findColumnWithPropertyName(property)!);
    const holding = (columns: readonly ColumnMetadata[]) => rowsHolding(manager, metadata, valuesOf([...columns, ...checkedColumns], row));
    const uniques =
      keyAtInsert === 'generated'
        ? declaredUniques(metadata).filter((columns) => columns.every((column) => storable(column.getEntityValue(row))))
        : [];
    if (uniques.length === 0) {
      if (!metadata.primaryColumns.every((column) => storable(column.getEntityValue(row)))) return null;
      return (await holding(metadata.primaryColumns)).length > 0
        ? { ...change, entityId: entityIdOf(metadata, row, undefined, undefined)! }
        : null;
    }
    const keys = new Set<string>();
    for (const columns of uniques) {
      const found = await holding(columns);
      if (found.length === 1) keys.add(entityIdOf(metadata, found[0], undefined, undefined)!);
    }
    if (keys.size > 1) {
      this.warnOnce(
        `conflict ${metadata.name}`,
        `An insert of ${metadata.name} with a conflict clause matched rows by different unique constraints, and TypeORM does not say which it wrote: its change was not published. Use save(), or WebhookPublisher.publish()`,
      );
    }
    return keys.size === 1 ? { ...change, entityId: [...keys][0] } : null;
  }

  private describeChange(
    metadata: EntityMetadata,
    entity: RegisteredWebhookEntity,
    row: ObjectLiteral,
    before: ObjectLiteral | undefined,
    stateChanged: boolean,
    knownId: unknown,
    keyFoundLater = false,
  ): EntityChange | null {
    const state = row[entity.stateProperty];
    const entityId = entityIdOf(metadata, row, before, knownId) ?? (keyFoundLater ? '' : null);
    const spaceId = this.spaceIdIn(entity, row);
    if (state === null || state === undefined || entityId === null) {
      this.logger.warn(`A change of ${entity.name} without ${entityId === null ? 'a primary key' : 'a state'} was not published`);
      return null;
    }
    if (spaceId === null) {
      this.logger.warn(
        `${entity.name} ${entityId} has no valid space id in ${entity.spaceProperty} (${String(row[entity.spaceProperty!])}); its change was not published`,
      );
      return null;
    }
    return { entity, entityId, spaceId, state: String(state), stateChanged };
  }

  /**
   * Known from memory that no listener of the entity is active in the row's space, so that most saves
   * of an entity nobody listens to there cost no more than this look. A row without a state or a valid
   * space is described all the same, for its warning.
   */
  private nobodyListens(entity: RegisteredWebhookEntity, row: ObjectLiteral): boolean {
    const spaceId = this.spaceIdIn(entity, row);
    if (spaceId === null || row[entity.stateProperty] === null || row[entity.stateProperty] === undefined) return false;
    return this.cache.cachedListeners(spaceId, entity.name)?.length === 0;
  }

  /** The space of a change: its space column's value, or `defaultSpaceId` for an entity without one. */
  private spaceIdIn(entity: RegisteredWebhookEntity, row: ObjectLiteral): number | null {
    return spaceIdOf(entity.spaceProperty === null ? this.options.defaultSpaceId : row[entity.spaceProperty]);
  }

  private warnUncapturedRemoval(entity: RegisteredWebhookEntity): void {
    this.warnOnce(
      `removal ${entity.name}`,
      `Rows of ${entity.name} were deleted through delete(), a query builder or as orphans of a relation, which do not say ` +
        'which rows they were: no webhook was recorded. Use remove(), or WebhookPublisher.publish() in the same transaction.',
    );
  }

  private warnUncapturedUpdate(entity: RegisteredWebhookEntity, values: ObjectLiteral): void {
    if (!(entity.stateProperty in values)) return;
    this.warnOnce(
      `update ${entity.name}`,
      `${entity.name}.${entity.stateProperty} was changed through update() or a query builder, which do not say which rows ` +
        'changed: no webhook was recorded. Use save(), or WebhookPublisher.publish() in the same transaction.',
    );
  }

  private warnOnce(key: string, message: string): void {
    if (this.warnedOnce.has(key)) return;
    this.warnedOnce.add(key);
    this.logger.warn(message);
  }
}

/**
 * A statement that finds the row by its primary key, only while it holds the row's values of the
 * `held` properties: for an update, the state it wrote (the row is there whether or not that update
 * was rolled back).
 */
function rowAsChanged(dataSource: DataSource, metadata: EntityMetadata, row: ObjectLiteral, held: readonly string[]): DriverStatement {
  const where = { ...metadata.getEntityIdMap(row), ...Object.fromEntries(held.map((property) => [property, row[property]])) };
  return dataSource.createQueryBuilder(metadata.target, 'row').withDeleted().select('1', 'found').where(where).getQueryAndParameters();
}

/** The row's values of the columns as a find condition, nested as TypeORM nests embedded columns. */
function valuesOf(columns: readonly ColumnMetadata[], row: ObjectLiteral): ObjectLiteral {
  return columns.reduce<ObjectLiteral>((values, column) => mergeNested(values, column.createValueMap(column.getEntityValue(row))), {});
}

function mergeNested(target: ObjectLiteral, source: ObjectLiteral): ObjectLiteral {
  for (const [key, value] of Object.entries(source)) {
    const nested = value !== null && typeof value === 'object' && !(value instanceof Date) && !Buffer.isBuffer(value);
    target[key] = nested ? mergeNested({ ...(target[key] as ObjectLiteral | undefined) }, value as ObjectLiteral) : value;
  }
  return target;
}

/** The keys of at most two rows holding the values, soft-deleted or not, read without the entity's load listeners. */
function rowsHolding(manager: EntityManager, metadata: EntityMetadata, values: ObjectLiteral): Promise<ObjectLiteral[]> {
  return manager
    .createQueryBuilder(metadata.target, 'row')
    .withDeleted()
    .select(metadata.primaryColumns.map((column) => `row.${column.propertyPath}`))
    .where(values)
    .limit(2)
    .callListeners(false)
    .getMany();
}

/** The columns of each unique constraint and unique index declared on the entity, without generated ones. */
function declaredUniques(metadata: EntityMetadata): ColumnMetadata[][] {
  const uniques = [...metadata.uniques, ...metadata.indices.filter((index) => index.isUnique)].map((unique) => unique.columns);
  return uniques.filter((columns) => columns.length > 0 && columns.every((column) => !column.isGenerated));
}

function definedValues(row: ObjectLiteral): ObjectLiteral {
  return Object.fromEntries(Object.entries(row).filter(([, value]) => value !== undefined));
}

function insertWrite(event: InsertEvent<ObjectLiteral>): CapturedWrite {
  return { row: event.entity, stateChanged: true, written: event.entity, inserted: true };
}

/** `null` when TypeORM gives no row as it was (update(), query builders). */
function updateWrite(event: UpdateEvent<ObjectLiteral>, entity: RegisteredWebhookEntity): CapturedWrite | null {
  if (!event.entity || !event.databaseEntity) return null;
  const before = event.databaseEntity;
  const row = { ...before, ...definedValues(event.entity) };
  const stateChanged = String(before[entity.stateProperty]) !== String(row[entity.stateProperty]);
  return { row, before, stateChanged, written: event.entity };
}

/** Removal, soft removal and recovery keep the state: only `notifyEveryChange` listeners hear of them. `null` without a row. */
function removalWrite(event: RemoveEvent<ObjectLiteral>): CapturedWrite | null {
  if (!event.entity && !event.databaseEntity) return null;
  const row = { ...definedValues(event.entity ?? {}), ...definedValues(event.databaseEntity ?? {}) };
  return { row, stateChanged: false, written: event.entity, removal: true, knownId: event.entityId };
}

/** The primary key as text; composite keys joined with ":" in column order. */
function entityIdOf(metadata: EntityMetadata, row: ObjectLiteral, before: ObjectLiteral | undefined, knownId: unknown): string | null {
  const values = metadata.primaryColumns.map((column) => column.getEntityValue(row) ?? (before && column.getEntityValue(before)));
  if (values.every((value) => value !== undefined && value !== null)) return values.map(String).join(':');
  if (knownId !== undefined && knownId !== null) {
    const fromId = metadata.primaryColumns.map((column) =>
      typeof knownId === 'object' ? column.getEntityValue(knownId as ObjectLiteral) : knownId,
    );
    if (fromId.every((value) => value !== undefined && value !== null)) return fromId.map(String).join(':');
  }
  return null;
}

/**
 * A space column's value as a space id, `null` if it is none. PostgreSQL's and MySQL's drivers give
 * a `bigint` column as a string of digits, which an update's row holds when TypeORM loaded it.
 */
function spaceIdOf(value: unknown): number | null {
  const id = typeof value === 'string' && /^[0-9]{1,10}$/.test(value) ? Number(value) : typeof value === 'bigint' ? Number(value) : value;
  return isId(id) ? id : null;
}
