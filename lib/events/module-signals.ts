import { EventEmitter } from 'node:events';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { EventEmitter2, WEBHOOK_EVENT_EMITTER, emitEvent } from './event-emitter.js';

/**
 * The events this copy of the module acts on itself (a commit, a listener or URL that changed
 * state): heard by its own parts on an emitter of their own, then published on the application's.
 * That one may carry the events of several copies of the module (one per DataSource), whose listener
 * and URL ids overlap, and one of the application's listeners that throws stops it calling the rest.
 */
@Injectable()
export class ModuleSignals {
  private readonly logger = new Logger('WebhookModule');
  private readonly own = new EventEmitter();

  constructor(@Inject(WEBHOOK_EVENT_EMITTER) private readonly emitter: EventEmitter2) {}

  announce(event: string, payload: object): void {
    this.own.emit(event, payload);
    emitEvent(this.emitter, this.logger, event, payload);
  }

  /** Heard by this copy's own parts only: for what the application is not told of. */
  signal(event: string, payload: object): void {
    this.own.emit(event, payload);
  }

  on<P extends object>(event: string, listener: (payload: P) => void): void {
    this.own.on(event, listener);
  }

  off<P extends object>(event: string, listener: (payload: P) => void): void {
    this.own.off(event, listener);
  }
}
