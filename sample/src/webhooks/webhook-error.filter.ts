import { Catch, HttpStatus, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { WebhookError } from 'nestjs-webhook-listener';

const STATUS_BY_CODE: Record<string, HttpStatus> = {
  WEBHOOK_VALIDATION: HttpStatus.BAD_REQUEST,
  WEBHOOK_NOT_FOUND: HttpStatus.NOT_FOUND,
  WEBHOOK_VERSION_CONFLICT: HttpStatus.CONFLICT,
  WEBHOOK_STATE: HttpStatus.CONFLICT,
};

/** Answers the module's typed errors with the HTTP status they stand for, and the field they name. */
@Catch(WebhookError)
export class WebhookErrorFilter implements ExceptionFilter<WebhookError> {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  catch(error: WebhookError, host: ArgumentsHost): void {
    const statusCode = STATUS_BY_CODE[error.code] ?? HttpStatus.INTERNAL_SERVER_ERROR;
    const field = 'field' in error ? error.field : undefined;
    const body = { statusCode, error: error.code, message: error.message, ...(field !== undefined && { field }) };
    this.adapterHost.httpAdapter.reply(host.switchToHttp().getResponse(), body, statusCode);
  }
}
