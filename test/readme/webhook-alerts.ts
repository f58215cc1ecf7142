import { Injectable, Logger } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import {
  WEBHOOK_DELIVERY_ABANDONED,
  WEBHOOK_LISTENER_DEACTIVATED,
  type WebhookDeliveryEventPayload,
  type WebhookListenerDeactivatedPayload,
} from '../../lib/index.js';

/** Needs EventEmitterModule.forRoot() from @nestjs/event-emitter in the application. */
@Injectable()
export class WebhookAlerts {
  private readonly logger = new Logger(WebhookAlerts.name);

  @OnEvent(WEBHOOK_DELIVERY_ABANDONED)
  deliveryAbandoned(event: WebhookDeliveryEventPayload): void {
    this.logger.warn(`Delivery ${event.deliveryId} of listener ${event.listenerId} abandoned after ${event.attempt} attempts`);
  }

  @OnEvent(WEBHOOK_LISTENER_DEACTIVATED)
  listenerDeactivated(event: WebhookListenerDeactivatedPayload): void {
    this.logger.warn(`Listener ${event.listenerId} of space ${event.spaceId} deactivated: ${event.reason}`);
  }
}
