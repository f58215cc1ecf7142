import type { TypeOrmModuleOptions } from '@nestjs/typeorm';
import { WEBHOOK_ENTITIES, webhookMigrationsFor } from '../../lib/index.js';
import { Order } from './order.entity.js';

const yourMigrations: Function[] = [];

// #region options
export const typeOrmOptions: TypeOrmModuleOptions = {
  type: 'postgres',
  url: process.env.DATABASE_URL,
  entities: [Order, ...WEBHOOK_ENTITIES],
  // The module's migrations for this database ('postgres'; 'mysql' or 'mariadb'; 'better-sqlite3' or 'sqlite'), with yours.
  migrations: [...webhookMigrationsFor('postgres'), ...yourMigrations],
  migrationsRun: true,
};
// #endregion
