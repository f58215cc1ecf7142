// Writes one migration per dialect with the statements TypeORM's schema builder would run to bring
// a database that has the current migrations up to the entities in dist/esm.
// Usage: npm run build && node scripts/generate-migration.mjs <Name>   (needs the local test databases)
import 'reflect-metadata';
import { writeFileSync } from 'node:fs';
import { DataSource } from 'typeorm';

const name = process.argv[2];
if (!/^[A-Z][A-Za-z0-9]+$/.test(name ?? '')) throw new Error('usage: node scripts/generate-migration.mjs <PascalCaseName>');
const { WEBHOOK_ENTITIES, WEBHOOK_MIGRATIONS } = await import('../dist/esm/index.js');
const timestamp = Date.now();
const dialects = {
  postgres: { type: 'postgres', host: '127.0.0.1', port: 5432, username: 'postgres', database: 'test' },
  mysql: { type: 'mariadb', host: '127.0.0.1', port: 3306, username: 'root', database: 'test' },
  sqlite: { type: 'better-sqlite3', database: ':memory:' },
};
const literal = (sql) => '`' + sql.replace(/\\/g, '\\\\').replace(/`/g, '\\`').replace(/\$\{/g, '\\${') + '`';

for (const [dialect, connection] of Object.entries(dialects)) {
  const dataSource = new DataSource({ ...connection, entities: [...WEBHOOK_ENTITIES], migrations: WEBHOOK_MIGRATIONS[dialect] });
  await dataSource.initialize();
  await dataSource.dropDatabase();
  await dataSource.runMigrations();
  const { upQueries, downQueries } = await dataSource.driver.createSchemaBuilder().log();
  await dataSource.destroy();
  const className = `Webhook${name}${dialect[0].toUpperCase()}${dialect.slice(1)}${timestamp}`;
  const file = `lib/migrations/${dialect}/${timestamp}-webhook-${name.replace(/[A-Z]/g, (c, i) => (i ? '-' : '') + c.toLowerCase())}.ts`;
  const lines = (queries) => queries.map((q) => `    await queryRunner.query(${literal(q.query)});`).join('\n');
  writeFileSync(
    file,
    `import type { MigrationInterface, QueryRunner } from 'typeorm';\n\n` +
      `export class ${className} implements MigrationInterface {\n` +
      `  name = '${className}';\n\n` +
      `  async up(queryRunner: QueryRunner): Promise<void> {\n${lines(upQueries)}\n  }\n\n` +
      `  async down(queryRunner: QueryRunner): Promise<void> {\n${lines([...downQueries].reverse())}\n  }\n}\n`,
  );
  console.log(`${file}: ${upQueries.length} statement(s)`);
}
