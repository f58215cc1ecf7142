import { SchedulerRegistry } from '@nestjs/schedule';

/** The SchedulerRegistry the module's timers go to: the host's when it imports ScheduleModule. */
export const WEBHOOK_SCHEDULER_REGISTRY = Symbol('WEBHOOK_SCHEDULER_REGISTRY');

export function chooseSchedulerRegistry(hostRegistry: SchedulerRegistry | undefined | null): SchedulerRegistry {
  return hostRegistry ?? new SchedulerRegistry();
}

export { SchedulerRegistry };

/**
 * The start of the names of a module instance's timers: one instance per DataSource may share the
 * host's registry with the others, and a timer registered under another's name would replace it.
 */
export function timerPrefix(dataSourceName: string | undefined): string {
  return dataSourceName === undefined || dataSourceName === 'default'
    ? 'nestjs-webhook-listener'
    : `nestjs-webhook-listener[${dataSourceName}]`;
}

/** Registers an interval under `name`, replacing one of the same name. */
export function replaceInterval(registry: SchedulerRegistry, name: string, callback: () => void, ms: number): void {
  removeInterval(registry, name);
  registry.addInterval(name, setInterval(callback, ms));
}

export function removeInterval(registry: SchedulerRegistry, name: string): void {
  if (registry.doesExist('interval', name)) registry.deleteInterval(name);
}

/** The longest delay Node's timers take; a longer one fires at once. */
export const MAX_TIMER_DELAY_MS = 2_147_483_647;

/** Registers a one-shot timer under `name`, replacing one of the same name; a delay beyond MAX_TIMER_DELAY_MS waits that long. */
export function replaceTimeout(registry: SchedulerRegistry, name: string, callback: () => void, ms: number): void {
  removeTimeout(registry, name);
  const timer = setTimeout(
    () => {
      removeTimeout(registry, name);
      callback();
    },
    Math.min(ms, MAX_TIMER_DELAY_MS),
  );
  registry.addTimeout(name, timer);
}

export function removeTimeout(registry: SchedulerRegistry, name: string): void {
  if (registry.doesExist('timeout', name)) registry.deleteTimeout(name);
}
