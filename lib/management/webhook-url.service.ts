import { Inject, Injectable } from '@nestjs/common';
import { In, type DataSource, type EntityManager } from 'typeorm';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { WebhookValidationError } from '../errors/webhook.errors.js';
import { NAME_MAX_LENGTH } from '../model/managed-object.entity.js';
import { WebhookUrl } from '../model/webhook-url.entity.js';
import { inTransaction } from '../persistence/transaction.js';
import { SsrfGuard } from '../security/ssrf-guard.js';
import { WEBHOOK_DATA_SOURCE } from '../module/webhook.constants.js';
import { assertKnownKeys, assertObject, requireBoolean, requireString } from '../validation/input.validation.js';
import { isLive, LIVE_STATES } from './lifecycle.js';
import { ListenerChangeNotifier } from './listener-change.notifier.js';
import { lockedRow, refuseWhileUsedByLiveListeners } from './listener-usage.js';
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
/** How many times a listener's address is looked for while the URLs found get other addresses meanwhile, before a URL is created for it. */
const MAX_ADDRESS_SEARCHES = 3;

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

  /** Only the listeners of an ACTIVE URL are sent anything. */
  protected override afterCommit(url: WebhookUrl, previousState?: CreationEntityState): void {
    if (previousState !== undefined && previousState !== url.state)
      this.changes.urlStateCommitted(url.id, url.linkedSpaceId, previousState, url.state);
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
   * The URL found is locked and read again: an update that gave it another address meanwhile makes
   * the search start over.
   */
  async findOrCreateWith(manager: EntityManager, spaceId: number, address: string, field: string): Promise<WebhookUrl> {
    for (let search = 0; search < MAX_ADDRESS_SEARCHES; search++) {
      const existing = await this.liveUrlWith(manager, spaceId, address);
      if (!existing) break;
      const locked = await lockedRow(manager, WebhookUrl, spaceId, existing.id, 'share', ['url']);
      if (locked?.url !== address) continue;
      if (locked.state === CreationEntityState.ACTIVE) return existing;
      if (isLive(locked.state)) {
        throw new WebhookValidationError(
          field,
          `WebhookUrl ${existing.id} of the space has this address and is ${locked.state}: make it ACTIVE, or give its id to use it as it is`,
        );
      }
      break;
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

  /** The live URL of the space with exactly this address, the ACTIVE one first. */
  private async liveUrlWith(manager: EntityManager, spaceId: number, address: string): Promise<WebhookUrl | undefined> {
    const alike = await manager.find(WebhookUrl, {
      where: { linkedSpaceId: spaceId, url: address, state: In([...LIVE_STATES]) },
      order: { id: 'ASC' },
    });
    // MySQL and MariaDB compare text without case by default: a path that differs in case is another URL.
    const same = alike.filter((url) => url.url === address);
    return same.find((url) => url.state === CreationEntityState.ACTIVE) ?? same[0];
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
