import { ConfigurableModuleBuilder } from '@nestjs/common';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import { WEBHOOK_ENTITIES } from '../model/webhook.entities.js';
import { timerPrefix } from '../scheduling/scheduler.js';
import { WEBHOOK_DATA_SOURCE, WEBHOOK_TIMER_PREFIX } from './webhook.constants.js';
import type { WebhookModuleOptions } from './webhook-options.interface.js';

/** Settings that shape the module's wiring, so they are given beside the options, also to forRootAsync. */
export interface WebhookModuleExtras {
  /** Register the module globally. Default true. */
  isGlobal?: boolean;
  /** Name of the host's TypeORM DataSource, when it is not the default one. */
  dataSourceName?: string;
}

/** The names of `WebhookModuleExtras`. */
export const WEBHOOK_MODULE_SETTINGS: readonly (keyof WebhookModuleExtras)[] = ['isGlobal', 'dataSourceName'];

export const {
  ConfigurableModuleClass: ConfigurableWebhookModule,
  MODULE_OPTIONS_TOKEN: WEBHOOK_MODULE_OPTIONS,
  OPTIONS_TYPE: WEBHOOK_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: WEBHOOK_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<WebhookModuleOptions>({ moduleName: 'Webhook' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createWebhookOptions')
  .setExtras<WebhookModuleExtras>({ isGlobal: true, dataSourceName: undefined }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
    imports: [...(definition.imports ?? []), TypeOrmModule.forFeature([...WEBHOOK_ENTITIES], extras.dataSourceName)],
    providers: [
      ...(definition.providers ?? []),
      { provide: WEBHOOK_DATA_SOURCE, useExisting: getDataSourceToken(extras.dataSourceName) },
      { provide: WEBHOOK_TIMER_PREFIX, useValue: timerPrefix(extras.dataSourceName) },
    ],
  }))
  .build();
