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
}
