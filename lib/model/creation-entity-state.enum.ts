/** Lifecycle of listeners, URLs and identities, as on the wallee / PostFinance Checkout platform. */
export enum CreationEntityState {
  CREATE = 'CREATE',
  ACTIVE = 'ACTIVE',
  INACTIVE = 'INACTIVE',
  DELETING = 'DELETING',
  DELETED = 'DELETED',
}

export const CREATION_ENTITY_STATES: readonly CreationEntityState[] = Object.values(CreationEntityState);
