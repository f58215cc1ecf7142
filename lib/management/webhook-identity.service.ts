import { Inject, Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { DeliveryStore } from '../delivery/delivery.store.js';
import { WebhookNotFoundError, WebhookValidationError, WebhookVersionConflictError } from '../errors/webhook.errors.js';
import type { CreationEntityState } from '../model/creation-entity-state.enum.js';
import { NAME_MAX_LENGTH } from '../model/managed-object.entity.js';
import { WebhookIdentity } from '../model/webhook-identity.entity.js';
import { WebhookRetiredKey } from '../model/webhook-retired-key.entity.js';
import { inTransaction } from '../persistence/transaction.js';
import { WEBHOOK_DATA_SOURCE, WEBHOOK_RESOLVED_OPTIONS } from '../module/webhook.constants.js';
import type { ResolvedWebhookOptions } from '../module/webhook-options.interface.js';
import { KeyEncryptionService } from '../signing/key-encryption.service.js';
import { assertKnownKeys, assertObject, requireId, requireString } from '../validation/input.validation.js';
import { assertWritable } from './lifecycle.js';
import { refuseWhileUsedByLiveListeners } from './listener-usage.js';
import { commonQueryFields, ManagedObjectService, ROOT_ALIAS, requireSpaceId } from './managed-object.service.js';

export interface CreateWebhookIdentityInput {
  name: string;
  state?: CreationEntityState;
}

export interface UpdateWebhookIdentityInput {
  id: number;
  version: number;
  name?: string;
  state?: CreationEntityState;
}

/** What a receiver needs to check an `X-Signature`: the key id and its public key. */
export interface WebhookPublicKey {
  id: string;
  /** Base64 of the DER SubjectPublicKeyInfo. */
  publicKey: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

@Injectable()
export class WebhookIdentityService extends ManagedObjectService<WebhookIdentity> {
  protected readonly target = WebhookIdentity;
  protected readonly queryFields = {
    ...commonQueryFields(ROOT_ALIAS),
    keyId: { alias: ROOT_ALIAS, property: 'keyId', kind: 'string' },
  } as const;
  protected readonly updatableFields = ['name'];
  protected readonly immutableFields = ['keyId', 'publicKey', 'privateKey', 'secret'];

  constructor(
    @Inject(WEBHOOK_DATA_SOURCE) dataSource: DataSource,
    private readonly keyEncryption: KeyEncryptionService,
    @Inject(WEBHOOK_RESOLVED_OPTIONS) private readonly options: ResolvedWebhookOptions,
    private readonly deliveryStore: DeliveryStore,
  ) {
    super(dataSource);
  }

  /** Creates an identity with a fresh ECDSA P-256 key pair and Standard Webhooks secret. */
  async create(spaceId: number, input: CreateWebhookIdentityInput): Promise<WebhookIdentity> {
    requireSpaceId(spaceId);
    assertObject(input, 'input');
    assertKnownKeys(input, '', ['name', 'state']);
    const name = requireString(input.name, 'name', 1, NAME_MAX_LENGTH);
    const state = this.validateCreateState(input.state);
    const keys = this.keyEncryption.newSealedKeys();
    const saved = await inTransaction(this.dataSource, (manager) =>
      manager.save(manager.create(WebhookIdentity, { linkedSpaceId: spaceId, name, state, ...keys })),
    );
    this.logger.log(`Created WebhookIdentity ${saved.id} in space ${spaceId} (key ${keys.keyId})`);
    return this.read(spaceId, saved.id);
  }

  /** The public key a receiver uses to check signatures made with `keyId`, also after the identity was rotated. */
  async readPublicKey(keyId: string): Promise<WebhookPublicKey> {
    if (typeof keyId !== 'string' || !UUID.test(keyId)) throw new WebhookValidationError('keyId', 'must be a UUID');
    const where = { keyId: keyId.toLowerCase() };
    const found =
      (await this.dataSource.manager.findOne(WebhookIdentity, { where })) ??
      (await this.dataSource.manager.findOne(WebhookRetiredKey, { where }));
    if (!found) throw new WebhookNotFoundError('WebhookPublicKey', keyId);
    return { id: found.keyId, publicKey: found.publicKey };
  }

  /**
   * Gives the identity a new key pair and secret. The old public key stays readable through
   * `readPublicKey()`, and requests carry a Standard Webhooks signature made with the old secret
   * beside the new one for `signing.rotationGraceMs`, so that receivers can switch without a gap.
   */
  async rotate(spaceId: number, id: number): Promise<WebhookIdentity> {
    requireSpaceId(spaceId);
    requireId(id, 'id');
    const keys = this.keyEncryption.newSealedKeys();
    let retiredKeyId = '';
    const rotated = await inTransaction(this.dataSource, async (manager) => {
      const current = await this.readWithSecret(manager, spaceId, id);
      assertWritable(this.entityName, id, current.state);
      // Refused unless this instance's key opens the secret: the retired secret signs on beside the
      // new keys, which would be sealed with another key or none.
      this.keyEncryption.open(current.secret!, current.keyId);
      retiredKeyId = current.keyId;
      const now = Date.now();
      // The versioned write first: of two concurrent rotations the second waits for the row and then
      // finds the version changed, instead of failing on the retired key's unique index.
      const affected = await this.writeIf(manager, spaceId, id, { version: current.version }, keys);
      if (affected === 0) throw new WebhookVersionConflictError(this.entityName, id, current.version, undefined);
      await manager.insert(WebhookRetiredKey, {
        identityId: id,
        keyId: current.keyId,
        publicKey: current.publicKey,
        secret: current.secret,
        retiredAt: now,
        signsUntil: now + this.options.signing.rotationGraceMs,
      });
      return this.readWith(manager, spaceId, id);
    });
    this.logger.log(`Rotated WebhookIdentity ${id} in space ${spaceId}: key ${rotated.keyId} replaces ${retiredKeyId}`);
    this.afterCommit(rotated);
    return rotated;
  }

  /** This instance signs with the identity as it is now, not as it kept it. */
  protected override afterCommit(identity: WebhookIdentity): void {
    this.deliveryStore.forgetKeysOf(identity);
  }

  /** The `whsec_…` secret to hand to the receiver; the only call that returns it. */
  async revealSecret(spaceId: number, id: number): Promise<string> {
    requireSpaceId(spaceId);
    requireId(id, 'id');
    const found = await this.readWithSecret(this.dataSource.manager, spaceId, id);
    return this.keyEncryption.open(found.secret!, found.keyId);
  }

  /** The identity with its sealed secret, which reads and searches never select. */
  private async readWithSecret(manager: EntityManager, spaceId: number, id: number): Promise<WebhookIdentity> {
    const found = await this.selectInSpace(manager, spaceId)
      .addSelect(`${ROOT_ALIAS}.secret`)
      .andWhere(`${ROOT_ALIAS}.id = :id`, { id })
      .getOne();
    if (!found) throw new WebhookNotFoundError('WebhookIdentity', id, spaceId);
    return found;
  }

  protected async validateChanges(
    _manager: EntityManager,
    _spaceId: number,
    changes: Record<string, unknown>,
  ): Promise<Partial<WebhookIdentity>> {
    return changes.name === undefined ? {} : { name: requireString(changes.name, 'name', 1, NAME_MAX_LENGTH) };
  }

  protected override async beforeDelete(manager: EntityManager, current: WebhookIdentity): Promise<void> {
    await refuseWhileUsedByLiveListeners(manager, 'identity', current);
  }
}
