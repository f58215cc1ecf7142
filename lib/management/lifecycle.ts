import { WebhookStateError } from '../errors/webhook.errors.js';
import { CreationEntityState } from '../model/creation-entity-state.enum.js';

const { CREATE, ACTIVE, INACTIVE, DELETING, DELETED } = CreationEntityState;

/** States an object may be created in. */
export const CREATABLE_STATES: readonly CreationEntityState[] = [CREATE, ACTIVE, INACTIVE];

/** States that `update()` may move to, from each state. DELETING and DELETED are reached only by delete and the scheduler. */
const UPDATE_TRANSITIONS: Readonly<Record<CreationEntityState, readonly CreationEntityState[]>> = {
  [CREATE]: [ACTIVE, INACTIVE],
  [ACTIVE]: [INACTIVE],
  [INACTIVE]: [ACTIVE],
  [DELETING]: [],
  [DELETED]: [],
};

export const LIVE_STATES: readonly CreationEntityState[] = [CREATE, ACTIVE, INACTIVE];

export function isLive(state: CreationEntityState | undefined): boolean {
  return state !== undefined && LIVE_STATES.includes(state);
}

export function assertWritable(entityName: string, id: number, state: CreationEntityState): void {
  if (!isLive(state)) throw new WebhookStateError(entityName, id, state, undefined);
}

export function assertTransition(entityName: string, id: number, from: CreationEntityState, to: CreationEntityState): void {
  if (from !== to && !UPDATE_TRANSITIONS[from].includes(to)) {
    throw new WebhookStateError(entityName, id, from, to);
  }
}
