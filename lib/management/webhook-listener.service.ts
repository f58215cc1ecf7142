import { Inject, Injectable } from '@nestjs/common';
import type { DataSource, EntityManager, SelectQueryBuilder } from 'typeorm';
import { WebhookNotFoundError, WebhookValidationError } from '../errors/webhook.errors.js';
import type { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { NAME_MAX_LENGTH } from '../model/managed-object.entity.js';
import { WebhookIdentity } from '../model/webhook-identity.entity.js';
import { WebhookListener } from '../model/webhook-listener.entity.js';
import { WebhookUrl } from '../model/webhook-url.entity.js';
import { inTransaction, inTransactionUnder } from '../persistence/transaction.js';
import { SsrfGuard } from '../security/ssrf-guard.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { WebhookEntityRegistry, type RegisteredWebhookEntity } from '../registry/webhook-entity.registry.js';
import { assertKnownKeys, assertObject, requireArray, requireBoolean, requireId, requireString } from '../validation/input.validation.js';
import { isLive } from './lifecycle.js';
import { ListenerChangeNotifier } from './listener-change.notifier.js';
import { lockedState } from './listener-usage.js';
import { commonQueryFields, ManagedObjectService, ROOT_ALIAS, requireSpaceId } from './managed-object.service.js';
import { requireWebhookAddress } from './url.validation.js';
import { WebhookUrlService } from './webhook-url.service.js';

export interface CreateWebhookListenerInput {
  name: string;
  /** Technical name of a registered `@WebhookEntity`. */
  entity: string;
  /** States that trigger a webhook; empty or absent means every state. */
  entityStates?: string[];
  notifyEveryChange?: boolean;
  enablePayloadSignatureAndState?: boolean;
  /** A `WebhookUrl` id of the space, or an http(s) address (a live URL with it is reused, else one is created). */
  url: number | string;
  /** A `WebhookIdentity` id of the space; without one the space's default identity signs. */
  identity?: number | null;
  state?: CreationEntityState;
}

export interface UpdateWebhookListenerInput {
  id: number;
  version: number;
  name?: string;
  entityStates?: string[];
  notifyEveryChange?: boolean;
  enablePayloadSignatureAndState?: boolean;
  state?: CreationEntityState;
}

/** A registered entity as listeners see it. */
export interface WebhookListenerEntity {
  name: string;
  id: number;
  /** `null`: the entity declared no states, so any state name is accepted. */
  states: string[] | null;
}

const CREATE_FIELDS = ['name', 'entity', 'entityStates', 'notifyEveryChange', 'enablePayloadSignatureAndState', 'url', 'identity', 'state'];
const MAX_ENTITY_STATES = 100;

@Injectable()
export class WebhookListenerService extends ManagedObjectService<WebhookListener> {
  protected readonly target = WebhookListener;
  protected readonly queryFields = {
    ...commonQueryFields(ROOT_ALIAS),
    entity: { alias: ROOT_ALIAS, property: 'entity', kind: 'string' },
    notifyEveryChange: { alias: ROOT_ALIAS, property: 'notifyEveryChange', kind: 'boolean' },
    enablePayloadSignatureAndState: { alias: ROOT_ALIAS, property: 'enablePayloadSignatureAndState', kind: 'boolean' },
    ...commonQueryFields('url', 'url.'),
    'url.url': { alias: 'url', property: 'url', kind: 'string' },
    ...commonQueryFields('identity', 'identity.'),
  } as const;
  protected readonly updatableFields = ['name', 'entityStates', 'notifyEveryChange', 'enablePayloadSignatureAndState'];
  protected readonly immutableFields = ['entity', 'url', 'identity'];

  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) dataSource: DataSource,
    private readonly registry: WebhookEntityRegistry,
    private readonly urls: WebhookUrlService,
    private readonly ssrfGuard: SsrfGuard,
    private readonly changes: ListenerChangeNotifier,
  ) {
    super(dataSource);
  }

  /** The entities listeners can subscribe to (wallee's "listener entities"). */
  listEntities(): WebhookListenerEntity[] {
    return this.registry.list().map(({ name, id, states }) => ({ name, id, states: states && [...states] }));
  }

  async create(spaceId: number, input: CreateWebhookListenerInput): Promise<WebhookListener> {
    requireSpaceId(spaceId);
    assertObject(input, 'input');
    assertKnownKeys(input, '', CREATE_FIELDS);
    const name = requireString(input.name, 'name', 1, NAME_MAX_LENGTH);
    const entity = this.requireEntity(input.entity);
    const entityStates = input.entityStates === undefined ? [] : requireEntityStates(input.entityStates, entity);
    const notifyEveryChange = input.notifyEveryChange === undefined ? false : requireBoolean(input.notifyEveryChange, 'notifyEveryChange');
    const enablePayloadSignatureAndState =
      input.enablePayloadSignatureAndState === undefined
        ? true
        : requireBoolean(input.enablePayloadSignatureAndState, 'enablePayloadSignatureAndState');
    const state = this.validateCreateState(input.state);
    const urlRef = typeof input.url === 'number' ? requireId(input.url, 'url') : requireWebhookAddress(input.url, 'url', this.ssrfGuard);
    const identityId = input.identity === undefined || input.identity === null ? null : requireId(input.identity, 'identity');

    // Two listeners created at once for the same new address must share one URL.
    const creating = (work: (manager: EntityManager) => Promise<WebhookListener>) =>
      typeof urlRef === 'number'
        ? inTransaction(this.dataSource, work)
        : inTransactionUnder(this.dataSource, `url:${spaceId}:${urlRef}`, work);
    const created = await creating(async (manager) => {
      const url =
        typeof urlRef === 'number'
          ? await requireLiveReference(manager, WebhookUrl, spaceId, urlRef, 'url')
          : await this.urls.findOrCreateWith(manager, spaceId, urlRef, 'url');
      const identity = identityId === null ? null : await requireLiveReference(manager, WebhookIdentity, spaceId, identityId, 'identity');
      const saved = await manager.save(
        WebhookListener,
        manager.create(WebhookListener, {
          linkedSpaceId: spaceId,
          name,
          entity: entity.name,
          entityStates,
          notifyEveryChange,
          enablePayloadSignatureAndState,
          state,
          url: { id: url.id },
          identity: identity && { id: identity.id },
        }),
      );
      this.logger.log(`Created WebhookListener ${saved.id} in space ${spaceId} for ${entity.name} → WebhookUrl ${url.id}`);
      return this.readWith(manager, spaceId, saved.id);
    });
    this.afterCommit(created);
    return created;
  }

  protected override afterCommit(listener: WebhookListener, previousState?: CreationEntityState): void {
    this.changes.committed(listener, previousState, listener.state);
  }

  protected override withRelations(qb: SelectQueryBuilder<WebhookListener>): SelectQueryBuilder<WebhookListener> {
    return qb.leftJoinAndSelect(`${ROOT_ALIAS}.url`, 'url').leftJoinAndSelect(`${ROOT_ALIAS}.identity`, 'identity');
  }

  protected async validateChanges(
    _manager: EntityManager,
    _spaceId: number,
    changes: Record<string, unknown>,
    current: WebhookListener,
  ): Promise<Partial<WebhookListener>> {
    const valid: Partial<WebhookListener> = {};
    if (changes.name !== undefined) valid.name = requireString(changes.name, 'name', 1, NAME_MAX_LENGTH);
    if (changes.entityStates !== undefined)
      valid.entityStates = requireEntityStates(changes.entityStates, this.requireEntity(current.entity));
    if (changes.notifyEveryChange !== undefined) valid.notifyEveryChange = requireBoolean(changes.notifyEveryChange, 'notifyEveryChange');
    if (changes.enablePayloadSignatureAndState !== undefined) {
      valid.enablePayloadSignatureAndState = requireBoolean(changes.enablePayloadSignatureAndState, 'enablePayloadSignatureAndState');
    }
    return valid;
  }

  private requireEntity(value: unknown): RegisteredWebhookEntity {
    const entity = typeof value === 'string' ? this.registry.find(value) : undefined;
    if (!entity) {
      const known = this.registry.list().map((entry) => entry.name);
      throw new WebhookValidationError(
        'entity',
        `must be a registered webhook entity (${known.length ? known.join(', ') : 'none registered: decorate an entity with @WebhookEntity'})`,
      );
    }
    return entity;
  }
}

function requireEntityStates(value: unknown, entity: RegisteredWebhookEntity): string[] {
  const states = requireArray(value, 'entityStates', MAX_ENTITY_STATES).map((state, index) => {
    const field = `entityStates[${index}]`;
    if (entity.states) {
      if (typeof state !== 'string' || !entity.states.includes(state)) {
        throw new WebhookValidationError(field, `must be a state of ${entity.name}: ${entity.states.join(', ')}`);
      }
      return state;
    }
    return requireString(state, field, 1, 100);
  });
  return [...new Set(states)];
}

/**
 * A URL or identity of the same space that is not being deleted, and cannot be until the listener
 * is written (see `lockedState`); another space's is "not found".
 */
async function requireLiveReference(
  manager: EntityManager,
  target: typeof WebhookUrl | typeof WebhookIdentity,
  spaceId: number,
  id: number,
  field: string,
): Promise<{ id: number }> {
  const state = await lockedState(manager, target, spaceId, id, 'share');
  if (state === undefined) throw new WebhookNotFoundError(target.name, id, spaceId);
  if (!isLive(state)) throw new WebhookValidationError(field, `${target.name} ${id} is ${state}`);
  return { id };
}
