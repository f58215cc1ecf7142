import { Injectable, Module } from '@nestjs/common';
import { WebhookModule, type WebhookModuleOptions } from '../../lib/index.js';

/** Your application's settings: from the environment here, from a config service in most applications. */
@Injectable()
export class WebhookSettings {
  readonly keyEncryptionKey = process.env.WEBHOOK_KEY_ENCRYPTION_KEY;
  readonly deliversWebhooks = process.env.WEBHOOK_WORKER !== 'off';
}

@Module({ providers: [WebhookSettings], exports: [WebhookSettings] })
export class SettingsModule {}

export const webhookModule = WebhookModule.forRootAsync({
  imports: [SettingsModule],
  inject: [WebhookSettings],
  useFactory: (settings: WebhookSettings): WebhookModuleOptions => ({
    signing: { keyEncryptionKey: settings.keyEncryptionKey },
    worker: { enabled: settings.deliversWebhooks },
  }),
});
