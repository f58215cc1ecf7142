export const WEBHOOK_ENTITY_METADATA = 'nestjs-webhook-listener:entity';
export const WEBHOOK_STATE_METADATA = 'nestjs-webhook-listener:state';
export const WEBHOOK_SPACE_METADATA = 'nestjs-webhook-listener:space';
