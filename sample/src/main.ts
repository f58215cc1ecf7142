import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createSampleApp } from './create-app.js';
import { sampleDatabase } from './database/sample-database.js';

/** Runs the sample app until it is stopped: `node sample/dist/main.js` (PORT, default 3000; DATABASE_URL). */
async function bootstrap(): Promise<void> {
  const database = sampleDatabase();
  const app = await createSampleApp(database.options);
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
  Logger.log(`Listening on ${await app.getUrl()}, database: ${database.description}`, 'Sample');
}

void bootstrap();
