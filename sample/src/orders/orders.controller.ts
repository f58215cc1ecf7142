import { Body, Controller, Get, Param, ParseIntPipe, Post, Put } from '@nestjs/common';
import type { Order } from './order.entity.js';
import { OrdersService, type CreateOrderInput } from './orders.service.js';

@Controller('tenants/:tenantId/orders')
export class OrdersController {
  constructor(private readonly orders: OrdersService) {}

  @Post()
  create(@Param('tenantId', ParseIntPipe) tenantId: number, @Body() body: CreateOrderInput = {}): Promise<Order> {
    return this.orders.create(tenantId, body);
  }

  @Get(':id')
  read(@Param('tenantId', ParseIntPipe) tenantId: number, @Param('id', ParseIntPipe) id: number): Promise<Order> {
    return this.orders.read(tenantId, id);
  }

  @Put(':id/state')
  moveTo(
    @Param('tenantId', ParseIntPipe) tenantId: number,
    @Param('id', ParseIntPipe) id: number,
    @Body() body: { state?: unknown } = {},
  ): Promise<Order> {
    return this.orders.moveTo(tenantId, id, body.state);
  }
}
