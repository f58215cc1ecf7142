import type { LoggerService } from '@nestjs/common';

/** A Nest logger that keeps the warnings and errors an app logs, for tests to read. */
export class LogCollector implements LoggerService {
  readonly warnings: string[] = [];
  readonly errors: string[] = [];

  log(): void {}

  warn(message: unknown): void {
    this.warnings.push(String(message));
  }

  error(message: unknown): void {
    this.errors.push(String(message));
  }
}
