import { Inject, Injectable } from '@nestjs/common';
import { In, type DataSource, type EntityManager } from 'typeorm';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookValidationError } from '../errors/webhook.errors.js';
import { NAME_MAX_LENGTH } from '../model/managed-object.entity.js';
import { WebhookUrl } from '../model/webhook-url.entity.js';
import { inTransaction, isSqlite } from '../persistence/transaction.js';
import { SsrfGuard } from '../security/ssrf-guard.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { assertKnownKeys, assertObject, requireBoolean, requireString } from '../validation/input.validation.js';
import { isLive, LIVE_STATES } from './lifecycle.js';
import { ListenerChangeNotifier } from './listener-change.notifier.js';
import { refuseWhileUsedByLiveListeners } from './listener-usage.js';
import { commonQueryFields, ManagedObjectService, ROOT_ALIAS, requireSpaceId } from './managed-object.service.js';
import { requireWebhookAddress } from './url.validation.js';

export interface CreateWebhookUrlInput {
  name: string;
  url: string;
  state?: CreationEntityState;
  applicationManaged?: boolean;
}

export interface UpdateWebhookUrlInput {
  id: number;
  version: number;
  name?: string;
  url?: string;
  state?: CreationEntityState;
  applicationManaged?: boolean;
}

const CREATE_FIELDS = ['name', 'url', 'state', 'applicationManaged'];

@Injectable()
export class WebhookUrlService extends ManagedObjectService<WebhookUrl> {
  protected readonly target = WebhookUrl;
  protected readonly queryFields = {
    ...commonQueryFields(ROOT_ALIAS),
    url: { alias: ROOT_ALIAS, property: 'url', kind: 'string' },
    applicationManaged: { alias: ROOT_ALIAS, property: 'applicationManaged', kind: 'boolean' },
  } as const;
  protected readonly updatableFields = ['name', 'url', 'applicationManaged'];
  protected readonly immutableFields = [];

  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) dataSource: DataSource,
    private readonly ssrfGuard: SsrfGuard,
    private readonly changes: ListenerChangeNotifier,
  ) {
    super(dataSource);
  }

  /** Only the listeners of an ACTIVE URL are sent anything, and to the URL's address as it is now. */
  protected override afterCommit(url: WebhookUrl, previousState?: CreationEntityState): void {
    if (previousState !== undefined && previousState !== url.state)
      this.changes.urlStateCommitted(url.id, url.linkedSpaceId, previousState, url.state);
    this.changes.urlAddressCommitted(url.id, url.url);
  }

  async create(spaceId: number, input: CreateWebhookUrlInput): Promise<WebhookUrl> {
    requireSpaceId(spaceId);
    assertObject(input, 'input');
    assertKnownKeys(input, '', CREATE_FIELDS);
    const values = {
      linkedSpaceId: spaceId,
      name: requireString(input.name, 'name', 1, NAME_MAX_LENGTH),
      url: requireWebhookAddress(input.url, 'url', this.ssrfGuard),
      state: this.validateCreateState(input.state),
      applicationManaged: input.applicationManaged === undefined ? false : requireBoolean(input.applicationManaged, 'applicationManaged'),
    };
    const created = await inTransaction(this.dataSource, (manager) => this.insertWith(manager, values));
    this.logger.log(`Created WebhookUrl ${created.id} in space ${spaceId}`);
    return created;
  }

  /**
   * The ACTIVE URL of the space with exactly this address, or a new one named after its host. A URL
   * of that address that is live but not ACTIVE is refused: a listener put on it would hear nothing.
   * The URLs of that address are read with a lock, which waits for a change of one of them to commit
   * and then reads it as changed (its address or state).
   */
  async findOrCreateWith(manager: EntityManager, spaceId: number, address: string, field: string): Promise<WebhookUrl> {
    const alike = await manager.find(WebhookUrl, {
      where: { linkedSpaceId: spaceId, url: address, state: In([...LIVE_STATES]) },
      order: { id: 'ASC' },
      ...(!isSqlite(manager.connection) && { lock: { mode: 'pessimistic_read' } }),
    });
    // MySQL and MariaDB compare text without case by default: a path that differs in case is another URL.
    const same = alike.filter((url) => url.url === address && isLive(url.state));
    const active = same.find((url) => url.state === CreationEntityState.ACTIVE);
    if (active) return active;
    if (same.length > 0) {
      throw new WebhookValidationError(
        field,
        `WebhookUrl ${same[0].id} of the space has this address and is ${same[0].state}: make it ACTIVE, or give its id to use it as it is`,
      );
    }
    const name = new URL(address).host.slice(0, NAME_MAX_LENGTH);
    const created = await this.insertWith(manager, {
      linkedSpaceId: spaceId,
      name,
      url: address,
      state: CreationEntityState.ACTIVE,
      applicationManaged: false,
    });
    this.logger.log(`Created WebhookUrl ${created.id} in space ${spaceId} for a new listener`);
    return created;
  }

  protected async validateChanges(
    _manager: EntityManager,
    _spaceId: number,
    changes: Record<string, unknown>,
  ): Promise<Partial<WebhookUrl>> {
    const valid: Partial<WebhookUrl> = {};
    if (changes.name !== undefined) valid.name = requireString(changes.name, 'name', 1, NAME_MAX_LENGTH);
    if (changes.url !== undefined) valid.url = requireWebhookAddress(changes.url, 'url', this.ssrfGuard);
    if (changes.applicationManaged !== undefined)
      valid.applicationManaged = requireBoolean(changes.applicationManaged, 'applicationManaged');
    return valid;
  }

  protected override async beforeDelete(manager: EntityManager, current: WebhookUrl): Promise<void> {
    await refuseWhileUsedByLiveListeners(manager, 'url', current);
  }

  private async insertWith(manager: EntityManager, values: Partial<WebhookUrl>): Promise<WebhookUrl> {
    const saved = await manager.save(WebhookUrl, manager.create(WebhookUrl, values));
    return this.readWith(manager, values.linkedSpaceId!, saved.id);
  }
}
