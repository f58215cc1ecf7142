import 'reflect-metadata';
import { createSampleApp } from '../create-app.js';
import { sampleDatabase } from '../database/sample-database.js';
import { DemoFailure } from './demo-failure.js';
import { DemoScenario, type DemoSummary } from './demo-scenario.js';
import { SampleApiClient } from './sample-api.client.js';
import { style } from './terminal.js';

const DEMO_TIMEOUT_MS = 60_000;

/** `npm run sample`: starts the app on a free port, tells the story through its HTTP API, and stops it. */
async function runDemo(): Promise<DemoSummary> {
  const database = sampleDatabase();
  console.log(style.bold('nestjs-webhook-listener sample: signed webhooks for the orders of a shop'));
  console.log(`  database: ${database.description}`);
  const app = await createSampleApp(database.options, { logLevels: ['warn', 'error', 'fatal'] });
  try {
    await app.listen(0, '127.0.0.1');
    const api = new SampleApiClient(await app.getUrl());
    console.log(`  app:      ${api.baseUrl}`);
    try {
      return await new DemoScenario(api).run();
    } finally {
      await api.close();
    }
  } finally {
    await app.close();
    database.remove();
  }
}

function reportSuccess(summary: DemoSummary): void {
  console.log(
    `\n${style.green(style.bold('✓ Demo passed:'))} ${summary.deliveries} deliveries in ${summary.requests} requests, ` +
      `X-Signature and Standard Webhooks valid on every one; ${summary.retries} refused request retried with success.`,
  );
}

function reportFailure(error: unknown): void {
  const reason = error instanceof DemoFailure ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
  console.error(`\n${style.red(style.bold('✗ Demo failed:'))} ${reason}`);
  process.exitCode = 1;
}

const watchdog = setTimeout(() => {
  reportFailure(new DemoFailure(`the demo did not finish within ${DEMO_TIMEOUT_MS / 1000} s`));
  process.exit();
}, DEMO_TIMEOUT_MS);

runDemo()
  .then(reportSuccess, reportFailure)
  .finally(() => clearTimeout(watchdog));
