import 'reflect-metadata';
import { WEBHOOK_ENTITY_METADATA, WEBHOOK_SPACE_METADATA, WEBHOOK_STATE_METADATA } from './webhook-entity.constants.js';

/** An enum object (`enum OrderState { … }`) or a plain list of state names. */
export type WebhookEntityStates = Readonly<Record<string, string | number>> | readonly (string | number)[];

export interface WebhookEntityOptions {
  /** Technical name sent as `listenerEntityTechnicalName`; defaults to the class name. */
  name?: string;
  /** Number sent as `listenerEntityId`; defaults to a stable number derived from the name. */
  id?: number;
  /** The states the entity can be in; listeners may only subscribe to these. */
  states?: WebhookEntityStates;
}

/** Marks a TypeORM entity whose state changes are published to webhook listeners. */
export function WebhookEntity(options: WebhookEntityOptions = {}): ClassDecorator {
  return (target) => {
    Reflect.defineMetadata(WEBHOOK_ENTITY_METADATA, { ...options }, target);
    decoratedWebhookEntities().add(target);
  };
}

/**
 * Every class decorated with `@WebhookEntity` in this process, so that boot can point out one
 * that the DataSource does not know. Kept on `globalThis` because the ES module and CommonJS
 * builds of the package may both be loaded.
 */
export function decoratedWebhookEntities(): Set<Function> {
  const store = globalThis as { [DECORATED_CLASSES]?: Set<Function> };
  return (store[DECORATED_CLASSES] ??= new Set());
}

const DECORATED_CLASSES = Symbol.for('nestjs-webhook-listener:decorated-entities');

/** Marks the property that holds the entity's state. Exactly one per webhook entity. */
export function WebhookState(): PropertyDecorator {
  return appendPropertyMetadata(WEBHOOK_STATE_METADATA);
}

/** Marks the property holding the space id; without it the module's `defaultSpaceId` is used. */
export function WebhookSpace(): PropertyDecorator {
  return appendPropertyMetadata(WEBHOOK_SPACE_METADATA);
}

function appendPropertyMetadata(key: string): PropertyDecorator {
  return (target, propertyKey) => {
    const owner = target.constructor;
    const existing: (string | symbol)[] = Reflect.getOwnMetadata(key, owner) ?? [];
    Reflect.defineMetadata(key, [...existing, propertyKey], owner);
  };
}
