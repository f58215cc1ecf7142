import { Inject, Injectable } from '@nestjs/common';
import { LessThanOrEqual, type DataSource, type EntityManager, type FindManyOptions, type FindOneOptions } from 'typeorm';
import { WebhookValidationError } from '../errors/webhook.errors.js';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookDelivery, WebhookDeliveryState } from '../model/webhook-delivery.entity.js';
import { WebhookListener } from '../model/webhook-listener.entity.js';
import { MAX_PAGE_SIZE } from '../query/entity-query.constants.js';
import { assertKnownKeys, assertObject, requireId, requireInteger } from '../validation/input.validation.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { SqlText } from './sql-text.js';

/** Which due deliveries `findDueDeliveries()` reads. */
export interface DueDeliveriesOptions {
  /** Only this listener's. */
  listenerId?: number;
  /** At most this many, 1 to 100. Default 100. */
  limit?: number;
}

/** What matching a change needs of a listener, read without loading the whole row. */
export interface MatchableListener {
  id: number;
  urlId: number;
  /** `null`: every state. */
  entityStates: ReadonlySet<string> | null;
  notifyEveryChange: boolean;
}

/** Whether a listener watches `state` (an empty `entityStates` watches every state). */
export function watchesState(listener: MatchableListener, state: string): boolean {
  return listener.entityStates === null || listener.entityStates.has(state);
}

/**
 * Read access to listeners, with the module's hot queries as named methods. Writes go through
 * `WebhookListenerService`, which validates them; this class offers none.
 */
@Injectable()
export class WebhookListenerRepository {
  constructor(@Inject(WEBHOOK_DATA_SOURCE) private readonly dataSource: DataSource) {
    this.sql = new SqlText(dataSource);
  }

  private readonly sql: SqlText;

  /**
   * TypeORM's `find()`; an identity loaded with the listeners comes without its private key and secret,
   * even when selected, and neither can be filtered or ordered on.
   */
  async find(options?: FindManyOptions<WebhookListener>): Promise<WebhookListener[]> {
    refuseKeyMaterialIn(options);
    const listeners = await this.dataSource.getRepository(WebhookListener).find(options);
    listeners.forEach(withoutKeyMaterial);
    return listeners;
  }

  /** TypeORM's `findOne()`, without key material as `find()`. */
  async findOne(options: FindOneOptions<WebhookListener>): Promise<WebhookListener | null> {
    refuseKeyMaterialIn(options);
    const listener = await this.dataSource.getRepository(WebhookListener).findOne(options);
    if (listener) withoutKeyMaterial(listener);
    return listener;
  }

  /** TypeORM's `count()`, which cannot filter on key material either. */
  async count(options?: FindManyOptions<WebhookListener>): Promise<number> {
    refuseKeyMaterialIn(options);
    return this.dataSource.getRepository(WebhookListener).count(options);
  }

  /**
   * ACTIVE listeners on an ACTIVE URL of a space for an entity: the lookup behind every captured
   * change, served by the index on (linkedSpaceId, entity, state).
   */
  async findActiveForEntity(
    spaceId: number,
    entityName: string,
    manager: EntityManager = this.dataSource.manager,
  ): Promise<MatchableListener[]> {
    const qb = manager.createQueryBuilder(WebhookListener, 'l');
    const column = (property: string) => this.sql.column(WebhookListener, property, 'l');
    const rows: { id: number | string; urlId: number | string; entity: string; entityStates: string; notifyEveryChange: unknown }[] =
      await qb
        .select(column('id'), 'id')
        .addSelect(column('url'), 'urlId')
        .addSelect(column('entity'), 'entity')
        .addSelect(column('entityStates'), 'entityStates')
        .addSelect(column('notifyEveryChange'), 'notifyEveryChange')
        // The URL's space too (always the listener's): by its id alone, PostgreSQL hashes every URL of
        // every space once there are a few hundred.
        .innerJoin('l.url', 'u', 'u.state = :state AND u.linkedSpaceId = :spaceId')
        .where(`${column('linkedSpaceId')} = :spaceId`, { spaceId })
        .andWhere(`${column('entity')} = :entityName`, { entityName })
        .andWhere(`${column('state')} = :state`, { state: CreationEntityState.ACTIVE })
        .orderBy(column('id'), 'ASC')
        .getRawMany();
    // MySQL's and MariaDB's default collation also finds the names that differ only in case: another entity.
    return rows
      .filter((row) => row.entity === entityName)
      .map((row) => {
        const states: string[] = JSON.parse(row.entityStates);
        return {
          id: Number(row.id),
          urlId: Number(row.urlId),
          entityStates: states.length === 0 ? null : new Set(states),
          notifyEveryChange: row.notifyEveryChange === true || Number(row.notifyEveryChange) === 1,
        };
      });
  }

  /** ACTIVE listeners on an ACTIVE URL of a space for an entity that watch `state` (an empty `entityStates` watches every state). */
  async findActiveForState(spaceId: number, entityName: string, state: string): Promise<MatchableListener[]> {
    const listeners = await this.findActiveForEntity(spaceId, entityName);
    return listeners.filter((listener) => watchesState(listener, state));
  }

  /**
   * PENDING deliveries of a space whose next attempt is due (`nextAttemptAt` now or earlier), those
   * a worker has claimed and is sending included (`leaseOwner` set), earliest due first: the backlog
   * the workers claim from, read along the index on (state, nextAttemptAt).
   */
  async findDueDeliveries(spaceId: number, options: DueDeliveriesOptions = {}): Promise<WebhookDelivery[]> {
    const space = requireId(spaceId, 'spaceId');
    assertObject(options, 'options');
    assertKnownKeys(options, 'options', ['listenerId', 'limit']);
    const listenerId = options.listenerId === undefined ? undefined : requireId(options.listenerId, 'options.listenerId');
    const limit = options.limit === undefined ? MAX_PAGE_SIZE : requireInteger(options.limit, 'options.limit', 1, MAX_PAGE_SIZE);
    return this.dataSource.getRepository(WebhookDelivery).find({
      where: {
        linkedSpaceId: space,
        state: WebhookDeliveryState.PENDING,
        nextAttemptAt: LessThanOrEqual(Date.now()),
        ...(listenerId !== undefined && { listenerId }),
      },
      order: { nextAttemptAt: 'ASC', id: 'ASC' },
      take: limit,
    });
  }
}

/** `revealSecret()` alone gives an identity's secret, and nothing its private key. */
function withoutKeyMaterial(listener: WebhookListener): void {
  if (!listener.identity) return;
  delete listener.identity.privateKey;
  delete listener.identity.secret;
}

const KEY_MATERIAL = ['privateKey', 'secret'];

/**
 * Refuses a filter or an ordering on an identity's key material, which would tell its value piece by
 * piece. TypeORM reads an array as OR at any level of a filter, so arrays are looked into.
 */
function refuseKeyMaterialIn(options: FindManyOptions<WebhookListener> | undefined): void {
  const places: [string, unknown][] = [
    ...everyItem(options?.where).map((where) => ['options.where', where] as [string, unknown]),
    ['options.order', options?.order],
  ];
  for (const [path, value] of places) {
    for (const identity of everyItem((value as { identity?: unknown } | undefined)?.identity)) {
      if (identity === null || typeof identity !== 'object') continue;
      // As TypeORM reads it: its own keys and those it inherits.
      const keys: string[] = [];
      for (const key in identity) keys.push(key);
      for (const key of KEY_MATERIAL) {
        if (keys.includes(key)) throw new WebhookValidationError(`${path}.identity.${key}`, 'cannot be filtered or ordered on');
      }
    }
  }
}

/** The items of nested arrays, or the value itself; by index, as TypeORM reads them, not by their own methods. */
function everyItem(value: unknown): unknown[] {
  if (!Array.isArray(value)) return value === undefined ? [] : [value];
  const items: unknown[] = [];
  for (let index = 0; index < value.length; index++) items.push(...everyItem(value[index]));
  return items;
}
