import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { BIGINT_AS_NUMBER } from './bigint.transformer.js';

export const ENTITY_ID_MAX_LENGTH = 191;
export const STATE_MAX_LENGTH = 100;

/** One change of a webhook entity, written once in the transaction of the change and never updated. */
@Entity('webhook_event')
@Index('IDX_webhook_event_space_entity', ['linkedSpaceId', 'entityName', 'entityId'])
export class WebhookEvent {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ type: 'int' })
  linkedSpaceId: number;

  /** Technical name of the entity (`listenerEntityTechnicalName`). */
  @Column({ type: 'varchar', length: 100 })
  entityName: string;

  /** The entity's registered id (`listenerEntityId`); wallee's own ids, such as 1472041829003, exceed 32 bits. */
  @Column({ type: 'bigint', transformer: BIGINT_AS_NUMBER })
  listenerEntityId: number;

  /** Primary key of the changed row, as text; composite keys are joined with ":". */
  @Column({ type: 'varchar', length: ENTITY_ID_MAX_LENGTH })
  entityId: string;

  @Column({ type: 'varchar', length: STATE_MAX_LENGTH, nullable: true })
  state: string | null;

  @CreateDateColumn()
  createdOn: Date;

  /**
   * When the change was recorded, in epoch ms: the payload's `timestamp`. `createdOn`, a date without
   * a time zone on PostgreSQL and MySQL, is read back in the application's zone, which cannot tell the
   * two hours apart that share their clock times when the clocks go back. Empty for the events recorded
   * before this column was added.
   */
  @Column({ type: 'bigint', nullable: true, transformer: BIGINT_AS_NUMBER })
  occurredAt: number | null;
}
