import { Body, Controller, Get, Param, ParseIntPipe, Post } from '@nestjs/common';
import { WebhookIdentityService, type CreateWebhookIdentityInput, type WebhookIdentity } from 'nestjs-webhook-listener';

/** Signing identities: an ECDSA key pair (for X-Signature) and a `whsec_…` secret (for Standard Webhooks). */
@Controller('tenants/:tenantId/identities')
export class IdentitiesController {
  constructor(private readonly identities: WebhookIdentityService) {}

  @Post()
  create(@Param('tenantId', ParseIntPipe) tenantId: number, @Body() body: CreateWebhookIdentityInput): Promise<WebhookIdentity> {
    return this.identities.create(tenantId, body);
  }

  @Get(':id')
  read(@Param('tenantId', ParseIntPipe) tenantId: number, @Param('id', ParseIntPipe) id: number): Promise<WebhookIdentity> {
    return this.identities.read(tenantId, id);
  }
}
