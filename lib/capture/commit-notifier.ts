import { Injectable } from '@nestjs/common';
import type { QueryRunner } from 'typeorm';
import { ModuleSignals } from '../events/module-signals.js';
import { WEBHOOK_EVENTS_COMMITTED, type WebhookEventsCommittedPayload } from './capture.constants.js';

/**
 * Counts what each open transaction recorded, and announces it once that transaction has really
 * committed (not on a savepoint release); a rollback forgets it.
 */
@Injectable()
export class CommitNotifier {
  private readonly pending = new WeakMap<QueryRunner, WebhookEventsCommittedPayload>();

  constructor(private readonly signals: ModuleSignals) {}

  recorded(queryRunner: QueryRunner | undefined, deliveries: number): void {
    if (!queryRunner?.isTransactionActive) {
      this.announce({ events: 1, deliveries });
      return;
    }
    const counts = this.pending.get(queryRunner) ?? { events: 0, deliveries: 0 };
    this.pending.set(queryRunner, { events: counts.events + 1, deliveries: counts.deliveries + deliveries });
  }

  committed(queryRunner: QueryRunner): void {
    if (queryRunner.isTransactionActive) return;
    const counts = this.pending.get(queryRunner);
    if (!counts) return;
    this.pending.delete(queryRunner);
    this.announce(counts);
  }

  rolledBack(queryRunner: QueryRunner): void {
    if (!queryRunner.isTransactionActive) this.pending.delete(queryRunner);
  }

  private announce(counts: WebhookEventsCommittedPayload): void {
    this.signals.announce(WEBHOOK_EVENTS_COMMITTED, counts);
  }
}
