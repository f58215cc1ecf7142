/** The JSON body a receiver gets, field for field as the wallee / PostFinance Checkout platform sends it. */
export interface WebhookPayload {
  eventId: number;
  entityId: number | string;
  listenerEntityId: number;
  listenerEntityTechnicalName: string;
  spaceId: number;
  webhookListenerId: number;
  timestamp: string;
  state?: string;
}

export interface PayloadSource {
  eventId: number;
  entityId: string;
  /** Send `entityId` as a JSON number (for entities with one numeric primary key). */
  numericEntityId: boolean;
  listenerEntityId: number;
  entityName: string;
  spaceId: number;
  listenerId: number;
  /** When the event was recorded (epoch ms). */
  occurredAt: number;
  state: string | null;
  includeState: boolean;
}

export function buildPayload(source: PayloadSource): string {
  const payload: WebhookPayload = {
    eventId: source.eventId,
    entityId: source.numericEntityId && isSafeIntegerText(source.entityId) ? Number(source.entityId) : source.entityId,
    listenerEntityId: source.listenerEntityId,
    listenerEntityTechnicalName: source.entityName,
    spaceId: source.spaceId,
    webhookListenerId: source.listenerId,
    timestamp: formatWebhookTimestamp(source.occurredAt),
  };
  if (source.includeState && source.state !== null) payload.state = source.state;
  return JSON.stringify(payload);
}

/** The last second formatted: the deliveries sent one after another mostly carry events of the same second. */
let formatted = { second: Number.NaN, text: '' };

/** `2023-12-19T13:43:35+0000`: UTC, whole seconds, offset without a colon. */
export function formatWebhookTimestamp(time: Date | number): string {
  const ms = typeof time === 'number' ? time : time.getTime();
  const second = Math.floor(ms / 1000);
  if (second !== formatted.second) formatted = { second, text: `${new Date(ms).toISOString().slice(0, 19)}+0000` };
  return formatted.text;
}

function isSafeIntegerText(text: string): boolean {
  return /^-?\d{1,16}$/.test(text) && Number.isSafeInteger(Number(text)) && String(Number(text)) === text;
}
