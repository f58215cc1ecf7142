import { setTimeout as delay } from 'node:timers/promises';
import { DemoFailure } from './demo-failure.js';

const POLL_INTERVAL_MS = 50;

/** Asks `probe` again and again until it returns a value, for at most `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new DemoFailure(`${what}: not seen within ${timeoutMs / 1000} s`);
    await delay(POLL_INTERVAL_MS);
  }
}
