import { Logger } from '@nestjs/common';
import { In, type DataSource, type EntityManager, type EntityTarget, type SelectQueryBuilder } from 'typeorm';
import { WebhookNotFoundError, WebhookValidationError, WebhookVersionConflictError } from '../errors/webhook.errors.js';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { inTransaction, withUpdateDate } from '../persistence/transaction.js';
import type { ManagedWebhookObject } from '../model/managed-object.entity.js';
import type { QueryField } from '../query/entity-query.constants.js';
import { EntityQueryCompiler, searchByQuery } from '../query/entity-query.compiler.js';
import type { EntityQuery, EntityQueryFilter } from '../query/entity-query.types.js';
import { assertKnownKeys, assertObject, MAX_ID, requireId, requireInteger, requireOneOf } from '../validation/input.validation.js';
import { assertTransition, assertWritable, CREATABLE_STATES, LIVE_STATES } from './lifecycle.js';
import { lockedState } from './listener-usage.js';

export const ROOT_ALIAS = 'o';

/** Input of every `update()`: the object's id, the version it was read at, and the changes. */
export interface UpdateInput {
  id: number;
  version: number;
}

/** Fields searchable on every managed object, read from the joined `alias`. */
export function commonQueryFields(alias: string, prefix = ''): Record<string, QueryField> {
  const field = (property: string, kind: QueryField['kind']): [string, QueryField] => [prefix + property, { alias, property, kind }];
  return Object.fromEntries([
    field('id', 'integer'),
    field('name', 'string'),
    field('state', 'state'),
    field('plannedPurgeDate', 'date'),
    field('version', 'integer'),
    field('createdOn', 'date'),
    field('updatedOn', 'date'),
  ]);
}

/**
 * Read, search, count, update and delete shared by listeners, URLs and identities: space
 * isolation, lifecycle rules and optimistic locking live here once.
 */
export abstract class ManagedObjectService<T extends ManagedWebhookObject> {
  protected abstract readonly target: EntityTarget<T> & { name: string };
  protected abstract readonly queryFields: Readonly<Record<string, QueryField>>;
  /** Fields `update()` may change, besides `state`. */
  protected abstract readonly updatableFields: readonly string[];
  /** Fields that are set on create and refused by `update()`. */
  protected abstract readonly immutableFields: readonly string[];
  protected readonly logger: Logger;

  protected constructor(protected readonly dataSource: DataSource) {
    this.logger = new Logger(new.target.name);
  }

  protected get entityName(): string {
    return this.target.name;
  }

  async read(spaceId: number, id: number): Promise<T> {
    requireSpaceId(spaceId);
    requireId(id, 'id');
    return this.readWith(this.dataSource.manager, spaceId, id);
  }

  async search(spaceId: number, query: EntityQuery = {}): Promise<T[]> {
    requireSpaceId(spaceId);
    return searchByQuery(this.dataSource, this.queryFields, this.selectInSpace(this.dataSource.manager, spaceId), query);
  }

  async count(spaceId: number, filter?: EntityQueryFilter): Promise<number> {
    requireSpaceId(spaceId);
    const qb = this.selectInSpace(this.dataSource.manager, spaceId);
    new EntityQueryCompiler(this.dataSource, this.queryFields, qb).applyFilter(filter, 'filter');
    return qb.getCount();
  }

  async update(spaceId: number, input: UpdateInput & Record<string, unknown>): Promise<T> {
    requireSpaceId(spaceId);
    assertObject(input, 'input');
    this.refuseImmutable(input);
    assertKnownKeys(input, '', ['id', 'version', 'state', ...this.updatableFields]);
    const id = requireId(input.id, 'id');
    const version = requireInteger(input.version, 'version', 1, MAX_ID);
    const state = input.state;
    // Read by name, as create() reads them: a field of a class instance may be a getter or inherited.
    const rest = Object.fromEntries(
      this.updatableFields.map((field) => [field, input[field]] as const).filter(([, value]) => value !== undefined),
    );
    const targetState = state === undefined ? undefined : requireOneOf(state, 'state', Object.values(CreationEntityState));

    let previousState: CreationEntityState | undefined;
    const updated = await inTransaction(this.dataSource, async (manager) => {
      const current = await this.readWith(manager, spaceId, id);
      previousState = current.state;
      assertWritable(this.entityName, id, current.state);
      if (current.version !== version) throw new WebhookVersionConflictError(this.entityName, id, version, current.version);
      if (targetState !== undefined) assertTransition(this.entityName, id, current.state, targetState);
      const changes = await this.validateChanges(manager, spaceId, rest, current);
      const affected = await this.writeIf(manager, spaceId, id, { version }, { ...changes, ...(targetState && { state: targetState }) });
      if (affected === 0) throw new WebhookVersionConflictError(this.entityName, id, version, undefined);
      this.logger.log(
        `Updated ${this.entityName} ${id} in space ${spaceId}${targetState && targetState !== current.state ? ` (${current.state} → ${targetState})` : ''}`,
      );
      return this.readWith(manager, spaceId, id);
    });
    this.afterCommit(updated, previousState);
    return updated;
  }

  /** Moves a live object to DELETING; the scheduler finishes it. Deleted objects stay readable. */
  async delete(spaceId: number, id: number): Promise<T> {
    requireSpaceId(spaceId);
    requireId(id, 'id');
    let previousState: CreationEntityState | undefined;
    const deleting = await inTransaction(this.dataSource, async (manager) => {
      await lockedState(manager, this.target, spaceId, id, 'update');
      const current = await this.readWith(manager, spaceId, id);
      previousState = current.state;
      assertWritable(this.entityName, id, current.state);
      await this.beforeDelete(manager, current);
      const affected = await this.writeIf(manager, spaceId, id, { states: LIVE_STATES }, { state: CreationEntityState.DELETING });
      if (affected === 0) throw new WebhookVersionConflictError(this.entityName, id, current.version, undefined);
      this.logger.log(`Deleting ${this.entityName} ${id} in space ${spaceId}`);
      return this.readWith(manager, spaceId, id);
    });
    this.afterCommit(deleting, previousState);
    return deleting;
  }

  /** Checks the changes of an update beyond `id`, `version` and `state`, and returns what to write. */
  protected abstract validateChanges(
    manager: EntityManager,
    spaceId: number,
    changes: Record<string, unknown>,
    current: T,
  ): Promise<Partial<T>>;

  /** Called once a create, update or delete has committed (`previousState` undefined for a create); the default does nothing. */
  protected afterCommit(_object: T, _previousState?: CreationEntityState): void {}

  /** A hook for refusing a delete (e.g. an object still in use); the default allows it. */
  protected async beforeDelete(_manager: EntityManager, _current: T): Promise<void> {}

  /** Adds the relations a read returns; the default has none. */
  protected withRelations(qb: SelectQueryBuilder<T>): SelectQueryBuilder<T> {
    return qb;
  }

  protected selectInSpace(manager: EntityManager, spaceId: number): SelectQueryBuilder<T> {
    const qb = manager.createQueryBuilder(this.target, ROOT_ALIAS).where(`${ROOT_ALIAS}.linkedSpaceId = :spaceId`, { spaceId });
    return this.withRelations(qb);
  }

  protected async readWith(manager: EntityManager, spaceId: number, id: number): Promise<T> {
    const found = await this.selectInSpace(manager, spaceId).andWhere(`${ROOT_ALIAS}.id = :id`, { id }).getOne();
    if (!found) throw new WebhookNotFoundError(this.entityName, id, spaceId);
    return found;
  }

  protected validateCreateState(value: unknown): CreationEntityState {
    return value === undefined ? CreationEntityState.ACTIVE : requireOneOf(value, 'state', CREATABLE_STATES);
  }

  /** Writes `changes` only while the row still matches `guard`; returns the number of rows written. */
  protected async writeIf(
    manager: EntityManager,
    spaceId: number,
    id: number,
    guard: { version?: number; states?: readonly CreationEntityState[] },
    changes: Record<string, unknown>,
  ): Promise<number> {
    const where: Record<string, unknown> = { id, linkedSpaceId: spaceId };
    if (guard.version !== undefined) where.version = guard.version;
    if (guard.states) where.state = In([...guard.states]);
    const result = await manager
      .createQueryBuilder()
      .update(this.target)
      .set(withUpdateDate(manager.connection, this.target, changes) as never)
      .where(where)
      .execute();
    return result.affected ?? 0;
  }

  private refuseImmutable(input: Record<string, unknown>): void {
    for (const field of ['linkedSpaceId', ...this.immutableFields]) {
      if (input[field] !== undefined) {
        throw new WebhookValidationError(field, 'cannot be changed after create');
      }
    }
  }
}

export function requireSpaceId(spaceId: unknown): number {
  return requireId(spaceId, 'spaceId');
}
