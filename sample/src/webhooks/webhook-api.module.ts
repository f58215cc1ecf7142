import { Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { DeliveriesController } from './deliveries.controller.js';
import { IdentitiesController } from './identities.controller.js';
import { ListenersController } from './listeners.controller.js';
import { WebhookErrorFilter } from './webhook-error.filter.js';

/** The HTTP API over the module's services: identities, listeners and the delivery log, per tenant. */
@Module({
  controllers: [IdentitiesController, ListenersController, DeliveriesController],
  providers: [{ provide: APP_FILTER, useClass: WebhookErrorFilter }],
})
export class WebhookApiModule {}
