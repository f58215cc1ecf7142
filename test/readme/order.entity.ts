import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { WebhookEntity, WebhookSpace, WebhookState } from '../../lib/index.js';

export enum OrderState {
  PENDING = 'PENDING',
  SHIPPED = 'SHIPPED',
  CANCELLED = 'CANCELLED',
}

@Entity('orders')
@WebhookEntity({ name: 'Order', id: 1001, states: OrderState })
export class Order {
  @PrimaryGeneratedColumn()
  id: number;

  /** The tenant. A listener hears only of the orders of its own space. */
  @WebhookSpace()
  @Column({ type: 'int' })
  tenantId: number;

  @WebhookState()
  @Column({ type: 'varchar', length: 20 })
  state: OrderState;
}
