import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { WEBHOOK_ENTITIES, WebhookModule } from '../../lib/index.js';
import { Order } from './order.entity.js';
import { OrderWebhooks } from './order-webhooks.service.js';
import { OrdersService } from './orders.service.js';

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'better-sqlite3',
      database: ':memory:',
      entities: [Order, ...WEBHOOK_ENTITIES],
      synchronize: true, // to try it out; an application runs migrations instead (see Migrations)
    }),
    WebhookModule.forRoot({
      // Loopback and private addresses are refused by default. This lets the module call a
      // receiver on this machine while you try it out; leave it out in production.
      security: { allowedHosts: ['127.0.0.1'] },
    }),
  ],
  providers: [OrdersService, OrderWebhooks],
})
export class AppModule {}
