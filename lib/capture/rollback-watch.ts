import { Injectable } from '@nestjs/common';
import type { QueryRunner } from 'typeorm';
import { WebhookTransactionEndedError } from '../errors/webhook.errors.js';
import { transactionDepth } from '../persistence/transaction.js';

/** The rollbacks begun on one query runner: how many, and the latest count at each depth. */
interface Rollbacks {
  count: number;
  latestAtDepth: number[];
}

/**
 * Notes the rollbacks, of transactions and of savepoints, that begin on each query runner. When
 * another subscriber of the same write fails, TypeORM rolls back at once, without waiting for the
 * capture, which may still be reading listeners: its statements would then run after the ROLLBACK,
 * outside any transaction, or inside the transaction around a rolled-back savepoint.
 */
@Injectable()
export class RollbackWatch {
  private readonly rollbacks = new WeakMap<QueryRunner, Rollbacks>();

  /** Called as TypeORM begins a rollback, before it sends it; the depth is the level being rolled back. */
  rollbackBegins(queryRunner: QueryRunner): void {
    const rollbacks = this.rollbacksOf(queryRunner);
    rollbacks.latestAtDepth[transactionDepth(queryRunner)] = ++rollbacks.count;
  }

  /**
   * A guard to call right before each statement written for a change made through `queryRunner`
   * now. It throws once the runner was released, once a rollback began since at the change's depth
   * or an outer one, and while the runner is at another depth: in a savepoint opened since (by
   * another subscriber), a statement would be undone with that savepoint, not with the change.
   */
  watch(queryRunner: QueryRunner | undefined): () => void {
    if (!queryRunner) return () => undefined;
    const depth = transactionDepth(queryRunner);
    const rollbacks = this.rollbacksOf(queryRunner);
    const countAtChange = rollbacks.count;
    return () => {
      const rolledBack = rollbacks.latestAtDepth.slice(0, depth + 1).some((count) => count > countAtChange);
      if (queryRunner.isReleased || rolledBack || transactionDepth(queryRunner) !== depth) throw new WebhookTransactionEndedError();
    };
  }

  private rollbacksOf(queryRunner: QueryRunner): Rollbacks {
    let rollbacks = this.rollbacks.get(queryRunner);
    if (!rollbacks) {
      rollbacks = { count: 0, latestAtDepth: [] };
      this.rollbacks.set(queryRunner, rollbacks);
    }
    return rollbacks;
  }
}
