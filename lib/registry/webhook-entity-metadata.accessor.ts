import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { WEBHOOK_ENTITY_METADATA, WEBHOOK_SPACE_METADATA, WEBHOOK_STATE_METADATA } from './webhook-entity.constants.js';
import type { WebhookEntityOptions } from './webhook-entity.decorator.js';

/** The one place that reads what the webhook decorators wrote. */
@Injectable()
export class WebhookEntityMetadataAccessor {
  getEntityOptions(target: Function): WebhookEntityOptions | undefined {
    return Reflect.getOwnMetadata(WEBHOOK_ENTITY_METADATA, target);
  }

  getStateProperties(target: Function): string[] {
    return this.collectProperties(WEBHOOK_STATE_METADATA, target);
  }

  getSpaceProperties(target: Function): string[] {
    return this.collectProperties(WEBHOOK_SPACE_METADATA, target);
  }

  /** Walks the prototype chain so that a decorated property of a base class counts too. */
  private collectProperties(key: string, target: Function): string[] {
    const found = new Set<string>();
    for (let current: Function | null = target; current && current !== Function.prototype; current = Object.getPrototypeOf(current)) {
      const own: (string | symbol)[] = Reflect.getOwnMetadata(key, current) ?? [];
      own.forEach((property) => found.add(String(property)));
    }
    return [...found];
  }
}
