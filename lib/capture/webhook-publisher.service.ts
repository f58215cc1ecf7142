import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { WebhookValidationError } from '../errors/webhook.errors.js';
import { ENTITY_ID_MAX_LENGTH, STATE_MAX_LENGTH } from '../model/webhook-event.entity.js';
import { WEBHOOK_RESOLVED_OPTIONS } from '../module/webhook.constants.js';
import type { ResolvedWebhookOptions } from '../module/webhook-options.interface.js';
import { WebhookEntityRegistry } from '../registry/webhook-entity.registry.js';
import { ChangeRecorder } from './change-recorder.service.js';
import { assertKnownKeys, assertObject, requireId, requireString } from '../validation/input.validation.js';

export interface PublishWebhookEventInput {
  /** Technical name of a registered `@WebhookEntity`. */
  entity: string;
  /** Primary key of the changed row. */
  entityId: string | number;
  /** The state the entity is now in. */
  state: string;
  /** Required for entities with a `@WebhookSpace()` property; else `defaultSpaceId`. */
  spaceId?: number;
}

export interface PublishResult {
  /** Deliveries recorded; 0 when no ACTIVE listener of the space watches this state. */
  deliveries: number;
}

/**
 * Records an event by hand, for writes the capture cannot see (`update()`, query builders, raw SQL).
 * Given the `EntityManager` of the host's transaction, it joins it: the event exists exactly when
 * that transaction commits.
 */
@Injectable()
export class WebhookPublisher {
  constructor(
    @Inject(WEBHOOK_RESOLVED_OPTIONS) private readonly options: ResolvedWebhookOptions,
    private readonly registry: WebhookEntityRegistry,
    private readonly recorder: ChangeRecorder,
  ) {}

  async publish(input: PublishWebhookEventInput, manager?: EntityManager): Promise<PublishResult> {
    assertObject(input, 'input');
    assertKnownKeys(input, '', ['entity', 'entityId', 'state', 'spaceId']);
    const entity = typeof input.entity === 'string' ? this.registry.find(input.entity) : undefined;
    if (!entity) throw new WebhookValidationError('entity', 'must be a registered webhook entity');
    const state = requireString(input.state, 'state', 1, STATE_MAX_LENGTH);
    if (entity.states && !entity.states.includes(state)) {
      throw new WebhookValidationError('state', `must be a state of ${entity.name}: ${entity.states.join(', ')}`);
    }
    const entityId = requireEntityId(input.entityId);
    if (entity.spaceProperty !== null && input.spaceId === undefined) {
      throw new WebhookValidationError('spaceId', `is required: ${entity.name} belongs to a space (${entity.spaceProperty})`);
    }
    const spaceId = input.spaceId === undefined ? this.options.defaultSpaceId : requireId(input.spaceId, 'spaceId');
    const change = { entity, entityId, spaceId, state, stateChanged: true };

    return { deliveries: await this.recorder.recordJoining(manager, change) };
  }
}

function requireEntityId(value: unknown): string {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  return requireString(value, 'entityId', 1, ENTITY_ID_MAX_LENGTH);
}
