import { Module, type DynamicModule } from '@nestjs/common';
import { ChangeRecorder } from '../capture/change-recorder.service.js';
import { CommitNotifier } from '../capture/commit-notifier.js';
import { ModuleSignals } from '../events/module-signals.js';
import { ListenerMatchCache } from '../capture/listener-match.cache.js';
import { TransactionWatch } from '../capture/transaction-watch.js';
import { StatementWatch } from '../capture/statement-watch.js';
import { WebhookCaptureSubscriber } from '../capture/webhook-capture.subscriber.js';
import { WebhookPublisher } from '../capture/webhook-publisher.service.js';
import { chooseEventEmitter, EventEmitter2, WEBHOOK_EVENT_EMITTER } from '../events/event-emitter.js';
import { ListenerChangeNotifier } from '../management/listener-change.notifier.js';
import { WebhookListenerRepository } from '../persistence/webhook-listener.repository.js';
import { DeliveryStore } from '../delivery/delivery.store.js';
import { ListenerHealthService } from '../delivery/listener-health.service.js';
import { WebhookDeliveryService } from '../delivery/webhook-delivery.service.js';
import { WebhookDispatcher } from '../delivery/webhook-dispatcher.service.js';
import { chooseSchedulerRegistry, SchedulerRegistry, WEBHOOK_SCHEDULER_REGISTRY } from '../scheduling/scheduler.js';
import { WebhookSigner } from '../signing/webhook-signer.service.js';
import { EcdsaSigningWorker } from '../signing/ecdsa-signing.worker.js';
import { MaintenanceStore } from '../scheduling/maintenance.store.js';
import { WebhookMaintenance } from '../scheduling/webhook-maintenance.service.js';
import { SsrfGuard } from '../security/ssrf-guard.js';
import { WebhookIdentityService } from '../management/webhook-identity.service.js';
import { WebhookListenerService } from '../management/webhook-listener.service.js';
import { WebhookUrlService } from '../management/webhook-url.service.js';
import { WebhookEntityMetadataAccessor } from '../registry/webhook-entity-metadata.accessor.js';
import { WebhookEntityRegistry } from '../registry/webhook-entity.registry.js';
import { KeyEncryptionService } from '../signing/key-encryption.service.js';
import { WEBHOOK_RESOLVED_OPTIONS } from './webhook.constants.js';
import {
  ConfigurableWebhookModule,
  WEBHOOK_MODULE_OPTIONS,
  WEBHOOK_MODULE_SETTINGS,
  type WEBHOOK_OPTIONS_TYPE,
} from './webhook.module-definition.js';
import type { WebhookModuleOptions } from './webhook-options.interface.js';
import { plainModuleOptions, resolveWebhookOptions } from './webhook-options.validation.js';

const PUBLIC_SERVICES = [
  WebhookListenerService,
  WebhookUrlService,
  WebhookIdentityService,
  WebhookEntityRegistry,
  WebhookListenerRepository,
  WebhookPublisher,
  WebhookDeliveryService,
];

/**
 * Outgoing webhooks for the host's entities. Import once with `forRoot()` or `forRootAsync()`,
 * after `TypeOrmModule.forRoot()`.
 */
@Module({
  providers: [
    {
      provide: WEBHOOK_RESOLVED_OPTIONS,
      inject: [WEBHOOK_MODULE_OPTIONS],
      useFactory: (options: WebhookModuleOptions) => resolveWebhookOptions(options),
    },
    {
      provide: WEBHOOK_EVENT_EMITTER,
      inject: [{ token: EventEmitter2, optional: true }],
      useFactory: chooseEventEmitter,
    },
    { provide: SsrfGuard, inject: [WEBHOOK_RESOLVED_OPTIONS], useFactory: SsrfGuard.fromOptions },
    WebhookEntityMetadataAccessor,
    KeyEncryptionService,
    ListenerMatchCache,
    ModuleSignals,
    ListenerChangeNotifier,
    CommitNotifier,
    TransactionWatch,
    StatementWatch,
    ChangeRecorder,
    WebhookCaptureSubscriber,
    {
      provide: WEBHOOK_SCHEDULER_REGISTRY,
      inject: [{ token: SchedulerRegistry, optional: true }],
      useFactory: chooseSchedulerRegistry,
    },
    EcdsaSigningWorker,
    WebhookSigner,
    DeliveryStore,
    ListenerHealthService,
    WebhookDispatcher,
    MaintenanceStore,
    WebhookMaintenance,
    ...PUBLIC_SERVICES,
  ],
  // The emitter too: without the host's EventEmitter2, the host listens on the module's own.
  exports: [...PUBLIC_SERVICES, WEBHOOK_EVENT_EMITTER],
})
export class WebhookModule extends ConfigurableWebhookModule {
  /** Every option has a default: `forRoot()` is `forRoot({})`. */
  static forRoot(options: typeof WEBHOOK_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(plainModuleOptions(options, WEBHOOK_MODULE_SETTINGS));
  }
}
