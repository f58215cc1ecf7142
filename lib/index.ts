export * from './errors/webhook.errors.js';
export { CreationEntityState } from './model/creation-entity-state.enum.js';
export { WebhookIdentity } from './model/webhook-identity.entity.js';
export { WebhookRetiredKey } from './model/webhook-retired-key.entity.js';
export { WebhookListener } from './model/webhook-listener.entity.js';
export { WebhookUrl } from './model/webhook-url.entity.js';
export { WEBHOOK_ENTITIES } from './model/webhook.entities.js';
export { WebhookEvent } from './model/webhook-event.entity.js';
export { WebhookDelivery, WebhookDeliveryState } from './model/webhook-delivery.entity.js';
export { WebhookListenerRepository } from './persistence/webhook-listener.repository.js';
export type { DueDeliveriesOptions, MatchableListener } from './persistence/webhook-listener.repository.js';
export { WebhookPublisher } from './capture/webhook-publisher.service.js';
export type { PublishResult, PublishWebhookEventInput } from './capture/webhook-publisher.service.js';
export { WEBHOOK_EVENTS_COMMITTED } from './capture/capture.constants.js';
export type { WebhookEventsCommittedPayload } from './capture/capture.constants.js';
export { WEBHOOK_EVENT_EMITTER } from './events/event-emitter.js';
export { WebhookEntity, WebhookSpace, WebhookState } from './registry/webhook-entity.decorator.js';
export type { WebhookEntityOptions, WebhookEntityStates } from './registry/webhook-entity.decorator.js';
export { WebhookEntityRegistry } from './registry/webhook-entity.registry.js';
export type { RegisteredWebhookEntity } from './registry/webhook-entity.registry.js';
export type {
  CriteriaOperator,
  EntityQuery,
  EntityQueryFilter,
  EntityQueryFilterType,
  EntityQueryOrderBy,
} from './query/entity-query.types.js';
export { WebhookListenerService } from './management/webhook-listener.service.js';
export type {
  CreateWebhookListenerInput,
  UpdateWebhookListenerInput,
  WebhookListenerEntity,
} from './management/webhook-listener.service.js';
export { WebhookUrlService } from './management/webhook-url.service.js';
export type { CreateWebhookUrlInput, UpdateWebhookUrlInput } from './management/webhook-url.service.js';
export { WebhookIdentityService } from './management/webhook-identity.service.js';
export type { CreateWebhookIdentityInput, UpdateWebhookIdentityInput, WebhookPublicKey } from './management/webhook-identity.service.js';
export { WebhookModule } from './module/webhook.module.js';
export { WEBHOOK_MODULE_OPTIONS } from './module/webhook.module-definition.js';
export type { WebhookModuleExtras } from './module/webhook.module-definition.js';
export type * from './module/webhook-options.interface.js';
export { WEBHOOK_MIGRATIONS, webhookMigrationsFor } from './migrations/index.js';
export { WebhookDeliveryService } from './delivery/webhook-delivery.service.js';
export { WebhookDeliveryAttempt, WebhookAttemptOutcome } from './model/webhook-delivery-attempt.entity.js';
export {
  WEBHOOK_DELIVERY_ABANDONED,
  WEBHOOK_DELIVERY_FAILED,
  WEBHOOK_DELIVERY_SUCCEEDED,
  WEBHOOK_LISTENER_DEACTIVATED,
  WEBHOOK_LISTENER_STATE_CHANGED,
  WEBHOOK_URL_STATE_CHANGED,
} from './delivery/delivery.constants.js';
export type {
  WebhookDeliveryEventPayload,
  WebhookListenerDeactivatedPayload,
  WebhookListenerStateChangedPayload,
  WebhookUrlStateChangedPayload,
} from './delivery/delivery.constants.js';
export type { WebhookPayload } from './delivery/payload.js';
