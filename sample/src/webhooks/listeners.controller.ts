import { Body, Controller, Delete, Get, Param, ParseIntPipe, Post } from '@nestjs/common';
import { WebhookListenerService, type CreateWebhookListenerInput, type WebhookListener } from 'nestjs-webhook-listener';

/** Webhook listeners: one URL subscribed to one entity and a set of its states, in one tenant. */
@Controller('tenants/:tenantId/listeners')
export class ListenersController {
  constructor(private readonly listeners: WebhookListenerService) {}

  @Post()
  create(@Param('tenantId', ParseIntPipe) tenantId: number, @Body() body: CreateWebhookListenerInput): Promise<WebhookListener> {
    return this.listeners.create(tenantId, body);
  }

  @Get()
  list(@Param('tenantId', ParseIntPipe) tenantId: number): Promise<WebhookListener[]> {
    return this.listeners.search(tenantId, { orderBys: [{ fieldName: 'id', sorting: 'ASC' }] });
  }

  @Get(':id')
  read(@Param('tenantId', ParseIntPipe) tenantId: number, @Param('id', ParseIntPipe) id: number): Promise<WebhookListener> {
    return this.listeners.read(tenantId, id);
  }

  /** Moves the listener to DELETING; the module's lifecycle job finishes it. */
  @Delete(':id')
  delete(@Param('tenantId', ParseIntPipe) tenantId: number, @Param('id', ParseIntPipe) id: number): Promise<WebhookListener> {
    return this.listeners.delete(tenantId, id);
  }
}
