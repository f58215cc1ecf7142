import { Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { DataSourceOptions } from 'typeorm';
import { WEBHOOK_ENTITIES, WebhookModule } from 'nestjs-webhook-listener';
import { Order } from './orders/order.entity.js';
import { OrdersModule } from './orders/orders.module.js';
import { ReceiverModule } from './receiver/receiver.module.js';
import { WebhookApiModule } from './webhooks/webhook-api.module.js';

@Module({})
export class AppModule {
  static forDatabase(database: DataSourceOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TypeOrmModule.forRoot({
          ...database,
          entities: [Order, ...WEBHOOK_ENTITIES],
          // Creates the sample's tables on start. An application runs migrations instead, the module's
          // with its own: migrations: [...webhookMigrationsFor('postgres'), ...yourMigrations].
          synchronize: true,
          // Stop at once on a database that cannot be reached, instead of retrying for half a minute.
          retryAttempts: 0,
        }),
        WebhookModule.forRoot({
          delivery: {
            // Retries after about 1 s (±20 %), then 5 s and 30 s, so the demo shows a retry at once.
            // The default schedule starts at 5 s and goes on for a day.
            retrySchedule: [1_000, 5_000, 30_000],
          },
          security: {
            // The demo's listener points at this app's own receiver on 127.0.0.1, a loopback address the
            // module refuses by default. Only that host is exempt here. A production app leaves this out,
            // so that nobody who may create a listener can make it call into its own network.
            allowedHosts: ['127.0.0.1'],
          },
        }),
        OrdersModule,
        WebhookApiModule,
        ReceiverModule,
      ],
    };
  }
}
