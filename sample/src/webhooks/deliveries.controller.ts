import { BadRequestException, Controller, Get, Param, ParseIntPipe, Query } from '@nestjs/common';
import { WebhookDeliveryService, type EntityQueryFilter, type WebhookDelivery, type WebhookDeliveryAttempt } from 'nestjs-webhook-listener';

/** The delivery log of a tenant: one delivery per event and listener, one attempt per HTTP request. */
@Controller('tenants/:tenantId')
export class DeliveriesController {
  constructor(private readonly deliveries: WebhookDeliveryService) {}

  /** `?listenerId=` narrows the list to one listener. */
  @Get('deliveries')
  listDeliveries(@Param('tenantId', ParseIntPipe) tenantId: number, @Query('listenerId') listenerId?: string): Promise<WebhookDelivery[]> {
    return this.deliveries.searchDeliveries(tenantId, {
      filter: equalsFilter('listenerId', listenerId),
      orderBys: [{ fieldName: 'id', sorting: 'ASC' }],
    });
  }

  /** `?deliveryId=` or `?listenerId=` narrows the list. */
  @Get('attempts')
  listAttempts(
    @Param('tenantId', ParseIntPipe) tenantId: number,
    @Query('deliveryId') deliveryId?: string,
    @Query('listenerId') listenerId?: string,
  ): Promise<WebhookDeliveryAttempt[]> {
    const filters = [equalsFilter('deliveryId', deliveryId), equalsFilter('listenerId', listenerId)].filter(
      (filter) => filter !== undefined,
    );
    return this.deliveries.searchAttempts(tenantId, {
      filter: filters.length > 1 ? { type: 'AND', children: filters } : filters[0],
      orderBys: [{ fieldName: 'id', sorting: 'ASC' }],
    });
  }
}

function equalsFilter(fieldName: string, value: string | undefined): EntityQueryFilter | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new BadRequestException(`${fieldName} must be a number`);
  return { type: 'LEAF', fieldName, operator: 'EQUALS', value: Number(value) };
}
