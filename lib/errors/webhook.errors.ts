/** Base class of every error the module throws on purpose; `code` is stable for programs to switch on. */
export abstract class WebhookError extends Error {
  abstract readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Input refused before anything was written. `field` names the offending input path. */
export class WebhookValidationError extends WebhookError {
  readonly code = 'WEBHOOK_VALIDATION';

  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`Invalid ${field}: ${reason}`);
  }
}

export class WebhookNotFoundError extends WebhookError {
  readonly code = 'WEBHOOK_NOT_FOUND';

  constructor(
    readonly entityName: string,
    readonly id: unknown,
    readonly spaceId?: number,
  ) {
    super(spaceId === undefined ? `${entityName} ${String(id)} not found` : `${entityName} ${String(id)} not found in space ${spaceId}`);
  }
}

/** The caller's `version` is not the stored one: somebody else changed the object first. */
export class WebhookVersionConflictError extends WebhookError {
  readonly code = 'WEBHOOK_VERSION_CONFLICT';

  constructor(
    readonly entityName: string,
    readonly id: number,
    readonly expectedVersion: number,
    readonly actualVersion: number | undefined,
  ) {
    super(
      `${entityName} ${id} was changed concurrently: version ${expectedVersion} given, ` +
        `${actualVersion === undefined ? 'a newer one' : actualVersion} stored; read it again and retry`,
    );
  }
}

/** A lifecycle transition that is not allowed, or a write to an object that is being deleted. */
export class WebhookStateError extends WebhookError {
  readonly code = 'WEBHOOK_STATE';

  constructor(
    readonly entityName: string,
    readonly id: number,
    readonly from: string,
    readonly to: string | undefined,
    detail?: string,
  ) {
    super(
      detail ??
        (to === undefined
          ? `${entityName} ${id} is ${from} and cannot be changed`
          : `${entityName} ${id} cannot move from ${from} to ${to}`),
    );
  }
}

/** A module option or a decorator is used wrongly; raised while the application boots. */
export class WebhookConfigurationError extends WebhookError {
  readonly code = 'WEBHOOK_CONFIGURATION';

  constructor(
    readonly setting: string,
    reason: string,
  ) {
    super(`nestjs-webhook-listener: ${setting} ${reason}`);
  }
}

/**
 * The transaction (or savepoint) a change was made in began to roll back, or ended, or another
 * savepoint stayed open above it, before the change's event was written: nothing was written for it.
 * On SQLite also the commit of a transaction that SQLite had already rolled back whole.
 */
export class WebhookTransactionEndedError extends WebhookError {
  readonly code = 'WEBHOOK_TRANSACTION_ENDED';

  constructor(
    message = 'The transaction of a change rolled back or ended, or another savepoint stayed open above it, before the webhook event of the change was written; nothing was written for it',
  ) {
    super(message);
  }
}

/**
 * A call waited too long for what it needed before it could write, and wrote nothing. On SQLite: a
 * service, or `publish()` without an `EntityManager`, waited for a transaction of the application to
 * end on the one connection TypeORM shares; made from inside that transaction, it could never go on.
 * On MySQL and MariaDB: a listener created by address waited for another creation of that address.
 */
export class WebhookConnectionBusyError extends WebhookError {
  readonly code = 'WEBHOOK_CONNECTION_BUSY';

  constructor(
    readonly waitedMs: number,
    awaited: string,
    advice = '',
  ) {
    super(`Waited ${waitedMs} ms for ${awaited}, in vain: nothing was written.${advice && ` ${advice}`}`);
  }
}
