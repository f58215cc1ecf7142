import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { WebhookConfigurationError, WebhookEntity, WebhookState } from '../../lib/index.js';
import { Order } from '../src/order.entity.js';
import { createTestApp } from '../src/test-app.js';

// This file has a module registry of its own in Jest, so the classes below are seen by no other suite.

@WebhookEntity({ name: 'NotAnEntity' })
class NotAnEntity {
  @WebhookState() state: string;
}

@Entity('misuse_elsewhere')
@WebhookEntity({ name: 'Elsewhere' })
class EntityOfAnotherDataSource {
  @PrimaryGeneratedColumn() id: number;
  @WebhookState() @Column({ type: 'varchar' }) state: string;
}

describe('WebhookEntityRegistry on decorated classes outside the DataSource', () => {
  it('stops boot on a decorated class that is no TypeORM entity', async () => {
    expect(NotAnEntity.name).toBe('NotAnEntity');
    const error = await createTestApp('sqlite', { hostEntities: [Order, EntityOfAnotherDataSource], logger: false }).catch((e) => e);
    expect(error).toBeInstanceOf(WebhookConfigurationError);
    expect(error.message).toMatch(/@WebhookEntity on NotAnEntity needs a TypeORM entity/);
  });
});
