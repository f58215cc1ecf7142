import { Injectable } from '@nestjs/common';
import { DataSource, Not } from 'typeorm';
import { WebhookPublisher } from '../../lib/index.js';
import { Order, OrderState } from './order.entity.js';

@Injectable()
export class OrdersService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly publisher: WebhookPublisher,
  ) {}

  create(tenantId: number): Promise<Order> {
    return this.dataSource.getRepository(Order).save({ tenantId, state: OrderState.PENDING });
  }

  // #region ship
  /** save() in a transaction: the module writes the webhook event through the same transaction. */
  ship(tenantId: number, id: number): Promise<Order> {
    return this.dataSource.transaction(async (manager) => {
      const order = await manager.findOneByOrFail(Order, { id, tenantId });
      order.state = OrderState.SHIPPED;
      return manager.save(order);
    });
  }
  // #endregion

  // #region cancel
  /** update() is not captured (TypeORM does not report the rows it changed): publish the change by hand, in the same transaction. */
  cancel(tenantId: number, id: number): Promise<void> {
    return this.dataSource.transaction(async (manager) => {
      const cancelled = await manager.update(Order, { id, tenantId, state: Not(OrderState.CANCELLED) }, { state: OrderState.CANCELLED });
      // Only a change that happened: not another tenant's order, nor one cancelled before.
      if (cancelled.affected === 0) return;
      await this.publisher.publish({ entity: 'Order', entityId: id, state: OrderState.CANCELLED, spaceId: tenantId }, manager);
    });
  }
  // #endregion
}
