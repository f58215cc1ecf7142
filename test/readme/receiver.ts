import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { SHOP_KEYS, ShopWebhookController, type ShopKeys } from './receiver.controller.js';

@Module({})
export class ReceiverModule {
  static withKeys(keys: ShopKeys): DynamicModule {
    return { module: ReceiverModule, controllers: [ShopWebhookController], providers: [{ provide: SHOP_KEYS, useValue: keys }] };
  }
}

export async function startReceiver(keys: ShopKeys, port: number): Promise<NestExpressApplication> {
  // rawBody: true keeps each request's bytes in req.rawBody, which @RawBody() reads.
  const app = await NestFactory.create<NestExpressApplication>(ReceiverModule.withKeys(keys), { rawBody: true });
  await app.listen(port);
  return app;
}
