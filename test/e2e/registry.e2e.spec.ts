import { Column, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import {
  WebhookConfigurationError,
  WebhookDeliveryService,
  WebhookEntity,
  WebhookEntityRegistry,
  WebhookListenerRepository,
  WebhookListenerService,
  WebhookSpace,
  WebhookState,
} from '../../lib/index.js';
import { deriveEntityId } from '../../lib/registry/webhook-entity.registry.js';
import { Order, Refund } from '../src/order.entity.js';
import { createTestApp } from '../src/test-app.js';
import { selectedDatabases } from '../src/databases.js';
import { freshSpace } from '../src/spaces.js';

@Entity('reg_two_states')
@WebhookEntity()
class TwoStates {
  @PrimaryGeneratedColumn() id: number;
  @WebhookState() @Column({ type: 'varchar' }) state: string;
  @WebhookState() @Column({ type: 'varchar' }) status: string;
}

@Entity('reg_no_state')
@WebhookEntity()
class NoState {
  @PrimaryGeneratedColumn() id: number;
  @Column({ type: 'varchar' }) state: string;
}

@Entity('reg_same_name')
@WebhookEntity({ name: 'Order' })
class SameName {
  @PrimaryGeneratedColumn() id: number;
  @WebhookState() @Column({ type: 'varchar' }) state: string;
}

@Entity('reg_same_id')
@WebhookEntity({ name: 'Other', id: 1001 })
class SameId {
  @PrimaryGeneratedColumn() id: number;
  @WebhookState() @Column({ type: 'varchar' }) state: string;
}

@Entity('reg_not_column')
@WebhookEntity()
class StateNotColumn {
  @PrimaryGeneratedColumn() id: number;
  @WebhookState() state: string;
}

@Entity('reg_empty_states')
@WebhookEntity({ states: [] })
class EmptyStates {
  @PrimaryGeneratedColumn() id: number;
  @WebhookState() @Column({ type: 'varchar' }) state: string;
}

@Entity('reg_bad_name')
@WebhookEntity({ name: 'has space' })
class BadName {
  @PrimaryGeneratedColumn() id: number;
  @WebhookState() @Column({ type: 'varchar' }) state: string;
}

abstract class Tracked {
  @WebhookState() @Column({ type: 'varchar' }) status: string;
  @WebhookSpace() @Column({ type: 'int' }) shop: number;
}

@Entity('reg_inherited')
@WebhookEntity({ states: ['OPEN', 'DONE'] })
class Ticket extends Tracked {
  @PrimaryColumn({ type: 'varchar', length: 20 }) code: string;
}

@Entity('reg_case_upper')
@WebhookEntity({ name: 'Lane', states: ['OPEN', 'CLOSED'] })
class LaneUpper {
  @PrimaryGeneratedColumn() id: number;
  @WebhookSpace() @Column({ type: 'int' }) shop: number;
  @WebhookState() @Column({ type: 'varchar', length: 20 }) state: string;
}

@Entity('reg_case_lower')
@WebhookEntity({ name: 'lane', states: ['OPEN', 'CLOSED'] })
class LaneLower {
  @PrimaryGeneratedColumn() id: number;
  @WebhookSpace() @Column({ type: 'int' }) shop: number;
  @WebhookState() @Column({ type: 'varchar', length: 20 }) state: string;
}

describe.each(selectedDatabases())('WebhookEntityRegistry on %s', (database) => {
  it('registers decorated entities with their name, id, states, state and space properties and primary key', async () => {
    const app = await createTestApp(database, { hostEntities: [Order, Refund, Ticket] });
    try {
      const registry = app.get(WebhookEntityRegistry);
      expect(registry.find('Order')).toMatchObject({
        id: 1001,
        states: ['PENDING', 'CONFIRMED', 'SHIPPED', 'CANCELLED'],
        stateProperty: 'state',
        spaceProperty: 'tenantId',
        primaryKey: ['id'],
        target: Order,
      });
      expect(registry.find('Refund')).toMatchObject({
        id: deriveEntityId('Refund'),
        states: ['0', '1', '2'],
        stateProperty: 'stage',
        spaceProperty: null,
      });
      expect(registry.find('Ticket')).toMatchObject({ stateProperty: 'status', spaceProperty: 'shop', primaryKey: ['code'] });
      expect(registry.findByTarget(Ticket)?.name).toBe('Ticket');
      expect(registry.list()).toHaveLength(3);
    } finally {
      await app.close();
    }
  });
});

describe.each(selectedDatabases())('entities whose names differ only in case, on %s', (database) => {
  it('are told apart by their listeners, whatever the collation', async () => {
    const app = await createTestApp(database, { hostEntities: [LaneUpper, LaneLower] });
    try {
      const shop = freshSpace();
      const lower = await app
        .get(WebhookListenerService)
        .create(shop, { name: 'lower', entity: 'lane', url: 'https://lane.example.com/hook' });
      expect(await app.get(WebhookListenerRepository).findActiveForEntity(shop, 'Lane')).toEqual([]);

      await app.dataSource.getRepository(LaneUpper).save({ shop, state: 'OPEN' });
      await app.dataSource.getRepository(LaneLower).save({ shop, state: 'OPEN' });
      const deliveries = await app.get(WebhookDeliveryService).searchDeliveries(shop, {});
      expect(deliveries.map((delivery) => delivery.listenerId)).toEqual([lower.id]);
    } finally {
      await app.close();
    }
  });
});

describe('WebhookEntityRegistry', () => {
  it('derives the same id from the same name every time', () => {
    expect(deriveEntityId('Refund')).toBe(deriveEntityId('Refund'));
    expect(deriveEntityId('Refund')).not.toBe(deriveEntityId('Order'));
    expect(deriveEntityId('Refund')).toBeGreaterThan(0);
    expect(deriveEntityId('Refund')).toBeLessThanOrEqual(0x7fffffff);
  });

  it.each<[string, Function[], RegExp]>([
    ['two @WebhookState properties', [TwoStates], /@WebhookState on TwoStates is used on state and status/],
    ['no @WebhookState property', [NoState], /@WebhookEntity on NoState needs one property marked with @WebhookState/],
    ['a duplicate name', [Order, SameName], /name "Order" is used by two entities/],
    ['a duplicate id', [Order, SameId], /id 1001 is used by both/],
    ['@WebhookState on a property that is no column', [StateNotColumn], /StateNotColumn\.state must mark a TypeORM column/],
    ['an empty state list', [EmptyStates], /states must list 1 or more/],
    ['a name with a space', [BadName], /name must be/],
  ])('stops boot on %s', async (_case, hostEntities, message) => {
    const error = await createTestApp('sqlite', { hostEntities, logger: false }).catch((e) => e);
    expect(error).toBeInstanceOf(WebhookConfigurationError);
    expect(error.message).toMatch(message);
  });
});
