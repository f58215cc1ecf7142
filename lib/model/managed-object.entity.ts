import { Column, CreateDateColumn, PrimaryGeneratedColumn, UpdateDateColumn, VersionColumn } from 'typeorm';
import { CreationEntityState } from './creation-entity-state.enum.js';

export const NAME_MAX_LENGTH = 50;

/** Columns every managed webhook object shares: identity, space, lifecycle and optimistic locking. */
export abstract class ManagedWebhookObject {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ type: 'int' })
  linkedSpaceId: number;

  @Column({ type: 'varchar', length: NAME_MAX_LENGTH })
  name: string;

  @Column({ type: 'varchar', length: 16 })
  state: CreationEntityState;

  @Column({ type: Date, nullable: true })
  plannedPurgeDate: Date | null;

  @VersionColumn()
  version: number;

  @CreateDateColumn()
  createdOn: Date;

  @UpdateDateColumn()
  updatedOn: Date;
}
