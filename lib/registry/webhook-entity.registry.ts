import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { getMetadataArgsStorage, type DataSource, type EntityMetadata } from 'typeorm';
import { WebhookConfigurationError } from '../errors/webhook.errors.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { WebhookEntityMetadataAccessor } from './webhook-entity-metadata.accessor.js';
import { decoratedWebhookEntities, type WebhookEntityOptions, type WebhookEntityStates } from './webhook-entity.decorator.js';

/** A host entity whose state changes are published (wallee calls these "listener entities"). */
export interface RegisteredWebhookEntity {
  /** Technical name, sent as `listenerEntityTechnicalName`. */
  readonly name: string;
  /** Sent as `listenerEntityId`. */
  readonly id: number;
  /** Allowed states, or `null` when the entity declared none (any state name is accepted). */
  readonly states: readonly string[] | null;
  readonly stateProperty: string;
  readonly spaceProperty: string | null;
  readonly primaryKey: readonly string[];
  /** One numeric primary key column: `entityId` is then sent as a JSON number. */
  readonly numericId: boolean;
  readonly target: Function;
}

const NUMERIC_COLUMN_TYPES: readonly unknown[] = [
  Number,
  'int',
  'integer',
  'int2',
  'int4',
  'int8',
  'smallint',
  'mediumint',
  'bigint',
  'tinyint',
];

/** The webhook entities of the module's DataSource, built once from TypeORM's entity metadata. */
@Injectable()
export class WebhookEntityRegistry implements OnModuleInit {
  private readonly logger = new Logger('WebhookEntityRegistry');
  private entries: Map<string, RegisteredWebhookEntity> | null = null;
  private readonly byTarget = new Map<Function | string, RegisteredWebhookEntity | null>();

  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource,
    private readonly accessor: WebhookEntityMetadataAccessor,
  ) {}

  onModuleInit(): void {
    const entities = this.build();
    this.checkDecoratedClassesAreEntities();
    this.logger.log(
      `Monitoring ${entities.size} webhook entit${entities.size === 1 ? 'y' : 'ies'}: ${[...entities.keys()].join(', ') || '(none)'}`,
    );
  }

  list(): RegisteredWebhookEntity[] {
    return [...this.build().values()];
  }

  find(name: string): RegisteredWebhookEntity | undefined {
    return this.build().get(name);
  }

  /** The registration of an entity class; `undefined` for any other class (answered from a map: capture asks for every write). */
  findByTarget(target: Function | string): RegisteredWebhookEntity | undefined {
    let found = this.byTarget.get(target);
    if (found === undefined) {
      found = this.list().find((entry) => entry.target === target) ?? null;
      this.byTarget.set(target, found);
    }
    return found ?? undefined;
  }

  /** A decorated class TypeORM knows nothing of is a mistake; one of another DataSource is only worth a warning. */
  private checkDecoratedClassesAreEntities(): void {
    const ownTargets = new Set(this.dataSource.entityMetadatas.map((metadata) => metadata.target));
    const typeormEntities = new Set(getMetadataArgsStorage().tables.map((table) => table.target));
    for (const target of decoratedWebhookEntities()) {
      if (ownTargets.has(target)) continue;
      if (!typeormEntities.has(target)) {
        throw new WebhookConfigurationError(`@WebhookEntity on ${target.name}`, 'needs a TypeORM entity: add @Entity() to the class');
      }
      this.logger.warn(
        `${target.name} has @WebhookEntity but is not an entity of this module's DataSource: this module does not publish its changes (a module on a DataSource that has it does)`,
      );
    }
  }

  private build(): Map<string, RegisteredWebhookEntity> {
    if (this.entries) return this.entries;
    const byName = new Map<string, RegisteredWebhookEntity>();
    const byId = new Map<number, string>();
    for (const metadata of this.dataSource.entityMetadatas) {
      const target = metadata.target;
      if (typeof target !== 'function') continue;
      const options = this.accessor.getEntityOptions(target);
      if (!options) continue;
      const entry = this.describe(metadata, target, options);
      if (byName.has(entry.name)) {
        throw new WebhookConfigurationError('@WebhookEntity', `name "${entry.name}" is used by two entities; give each a unique name`);
      }
      const clash = byId.get(entry.id);
      if (clash !== undefined) {
        throw new WebhookConfigurationError(
          '@WebhookEntity',
          `id ${entry.id} is used by both ${clash} and ${entry.name}; give each a unique id`,
        );
      }
      byName.set(entry.name, entry);
      byId.set(entry.id, entry.name);
    }
    this.entries = byName;
    return byName;
  }

  private describe(metadata: EntityMetadata, target: Function, options: WebhookEntityOptions): RegisteredWebhookEntity {
    const name = options.name ?? target.name;
    if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9_.-]{0,99}$/.test(name)) {
      throw new WebhookConfigurationError(
        `@WebhookEntity on ${target.name}`,
        `name must be 1-100 letters, digits, "_", "." or "-", starting with a letter`,
      );
    }
    const id = options.id ?? deriveEntityId(name);
    if (!Number.isSafeInteger(id) || id <= 0) {
      throw new WebhookConfigurationError(`@WebhookEntity on ${target.name}`, `id must be a positive integer, got ${String(id)}`);
    }
    return {
      name,
      id,
      states: options.states === undefined ? null : normalizeStates(options.states, target.name),
      stateProperty: this.singleColumnProperty(metadata, target, this.accessor.getStateProperties(target), '@WebhookState', true)!,
      spaceProperty: this.singleColumnProperty(metadata, target, this.accessor.getSpaceProperties(target), '@WebhookSpace', false),
      primaryKey: metadata.primaryColumns.map((column) => column.propertyName),
      numericId: metadata.primaryColumns.length === 1 && NUMERIC_COLUMN_TYPES.includes(metadata.primaryColumns[0].type),
      target,
    };
  }

  private singleColumnProperty(
    metadata: EntityMetadata,
    target: Function,
    properties: string[],
    decorator: string,
    required: boolean,
  ): string | null {
    if (properties.length > 1) {
      throw new WebhookConfigurationError(
        `${decorator} on ${target.name}`,
        `is used on ${properties.join(' and ')}; use it on exactly one property`,
      );
    }
    if (properties.length === 0) {
      if (required)
        throw new WebhookConfigurationError(`@WebhookEntity on ${target.name}`, `needs one property marked with ${decorator}()`);
      return null;
    }
    const [property] = properties;
    if (!metadata.findColumnWithPropertyName(property)) {
      throw new WebhookConfigurationError(`${decorator} on ${target.name}.${property}`, 'must mark a TypeORM column');
    }
    return property;
  }
}

/** A stable positive 31-bit number for an entity name, so ids survive restarts and deploys. */
export function deriveEntityId(name: string): number {
  return createHash('sha256').update(name).digest().readUInt32BE(0) & 0x7fffffff || 1;
}

function normalizeStates(states: WebhookEntityStates, className: string): string[] {
  const values = Array.isArray(states)
    ? states
    : Object.entries(states)
        // A numeric TypeScript enum also maps each number back to its name; skip those reverse keys.
        .filter(([key]) => !/^\d+$/.test(key))
        .map(([, value]) => value);
  const names = [...new Set(values.map(String))];
  if (names.length === 0 || names.some((state) => state.length === 0 || state.length > 100)) {
    throw new WebhookConfigurationError(`@WebhookEntity on ${className}`, 'states must list 1 or more state names of 1-100 characters');
  }
  return names;
}
