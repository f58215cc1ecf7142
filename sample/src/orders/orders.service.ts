import { BadRequestException, ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository, type EntityManager } from 'typeorm';
import { Order } from './order.entity.js';
import { canMove, isOrderState, OrderState } from './order-state.js';

export interface CreateOrderInput {
  customer?: unknown;
}

@Injectable()
export class OrdersService {
  constructor(
    @InjectRepository(Order) private readonly orders: Repository<Order>,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  /** A new order starts PENDING; the module sees the insert like any other change. */
  create(tenantId: number, input: CreateOrderInput): Promise<Order> {
    const customer = typeof input.customer === 'string' && input.customer.trim() ? input.customer.trim().slice(0, 100) : 'Guest';
    return this.orders.save(this.orders.create({ tenantId, customer, state: OrderState.PENDING }));
  }

  read(tenantId: number, id: number): Promise<Order> {
    return this.findInTenant(this.dataSource.manager, tenantId, id);
  }

  /**
   * Moves an order to its next state. The read and the save share one transaction, and the module
   * writes the webhook event and its deliveries into that same transaction: a state change that
   * rolls back is never announced.
   */
  moveTo(tenantId: number, id: number, state: unknown): Promise<Order> {
    if (!isOrderState(state)) throw new BadRequestException(`state must be one of ${Object.values(OrderState).join(', ')}`);
    return this.dataSource.transaction(async (manager) => {
      const order = await this.findInTenant(manager, tenantId, id);
      if (!canMove(order.state, state)) throw new ConflictException(`order ${id} is ${order.state} and cannot move to ${state}`);
      order.state = state;
      return manager.save(order);
    });
  }

  private async findInTenant(manager: EntityManager, tenantId: number, id: number): Promise<Order> {
    const order = await manager.findOneBy(Order, { id, tenantId });
    if (!order) throw new NotFoundException(`order ${id} not found in tenant ${tenantId}`);
    return order;
  }
}
