// eventemitter2 is CommonJS: its class is reached through the default export in both builds.
import eventemitter2 from 'eventemitter2';
import type { EventEmitter2 as EventEmitter2Class } from 'eventemitter2';
import type { Logger } from '@nestjs/common';
import { errorMessage } from '../errors/error-message.js';

// Typed by the class itself, so that the declarations name it and not the CommonJS namespace's member,
// which ES module consumers of the declarations cannot see.
export const EventEmitter2: typeof EventEmitter2Class = (eventemitter2 as unknown as { EventEmitter2: typeof EventEmitter2Class })
  .EventEmitter2;
export type EventEmitter2 = EventEmitter2Class;

/** The emitter the module publishes its events on: the host's EventEmitter2 when it has one. */
export const WEBHOOK_EVENT_EMITTER = Symbol('WEBHOOK_EVENT_EMITTER');

export function chooseEventEmitter(hostEmitter: EventEmitter2 | undefined | null): EventEmitter2 {
  return hostEmitter ?? new EventEmitter2({ wildcard: true, delimiter: '.', maxListeners: 50 });
}

/**
 * Emits one of the module's events. A listener that throws is logged: the emit happens after the
 * work it announces is done (often committed), and that work must neither fail nor stop halfway for it.
 */
export function emitEvent(emitter: EventEmitter2, logger: Logger, event: string, payload: object): void {
  try {
    emitter.emit(event, payload);
  } catch (error) {
    logger.error(`A listener of ${event} threw; the module carries on: ${errorMessage(error)}`);
  }
}
