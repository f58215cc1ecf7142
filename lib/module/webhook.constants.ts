export const WEBHOOK_DATA_SOURCE = Symbol('WEBHOOK_DATA_SOURCE');
/** What the names of this module instance's timers begin with (see `timerPrefix`). */
export const WEBHOOK_TIMER_PREFIX = Symbol('WEBHOOK_TIMER_PREFIX');
export const WEBHOOK_RESOLVED_OPTIONS = Symbol('WEBHOOK_RESOLVED_OPTIONS');
