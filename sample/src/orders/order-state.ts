export enum OrderState {
  PENDING = 'PENDING',
  CONFIRMED = 'CONFIRMED',
  SHIPPED = 'SHIPPED',
  CANCELLED = 'CANCELLED',
}

const NEXT_STATES: Record<OrderState, readonly OrderState[]> = {
  [OrderState.PENDING]: [OrderState.CONFIRMED, OrderState.CANCELLED],
  [OrderState.CONFIRMED]: [OrderState.SHIPPED, OrderState.CANCELLED],
  [OrderState.SHIPPED]: [],
  [OrderState.CANCELLED]: [],
};

export function isOrderState(value: unknown): value is OrderState {
  return typeof value === 'string' && Object.values<string>(OrderState).includes(value);
}

export function canMove(from: OrderState, to: OrderState): boolean {
  return NEXT_STATES[from].includes(to);
}
