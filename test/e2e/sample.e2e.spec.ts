import { execFileSync, spawn } from 'node:child_process';
import { connectionOptions, emptyDatabase, selectedDatabases } from '../src/databases.js';
import { ensureBuilt } from '../src/worker-processes.js';

// The demo of `npm run sample`, run as a user runs it: the sample app compiled against the built
// package, started by node, driven through its HTTP API. On SQLite always, on PostgreSQL when selected.
const DEMO_TIMEOUT_MS = 60_000;

interface DemoRun {
  code: number | null;
  output: string;
}

interface AttemptRow {
  delivery: number;
  attemptNumber: number;
  outcome: string;
  status: string;
}

const databases = [
  { name: 'SQLite', databaseUrl: undefined },
  ...(selectedDatabases().includes('postgres')
    ? [{ name: 'PostgreSQL', databaseUrl: postgresUrl(), empty: () => emptyDatabase('postgres') }]
    : []),
];

function postgresUrl(): string {
  return (connectionOptions('postgres') as { url: string }).url;
}

function compileSample(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'sample/tsconfig.json'], { stdio: 'inherit' });
}

function runDemo(databaseUrl: string | undefined): Promise<DemoRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.DATABASE_URL;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  const child = spawn(process.execPath, ['sample/dist/demo/demo.js'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
  const killer = setTimeout(() => child.kill('SIGKILL'), DEMO_TIMEOUT_MS);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, output: Buffer.concat(chunks).toString('utf8') });
    }),
  );
}

/** The rows of the attempt log table the demo prints. */
function attemptRows(output: string): AttemptRow[] {
  const rows = output.matchAll(/^\s+\d+\s+(\d+)\s+(\d+)\s+(SUCCEEDED|HTTP_ERROR|TIMEOUT|NETWORK_ERROR|REFUSED)\s+(\S+)\s+\d+ ms$/gm);
  return [...rows].map(([, delivery, attemptNumber, outcome, status]) => ({
    delivery: Number(delivery),
    attemptNumber: Number(attemptNumber),
    outcome,
    status,
  }));
}

describe('the sample app (npm run sample)', () => {
  beforeAll(() => {
    ensureBuilt();
    compileSample();
  }, 120_000);

  it.each(databases)(
    'runs its demo end to end on $name',
    async ({ databaseUrl, empty }) => {
      // The sample creates its tables on a database as a new user's: without what other suites left.
      await empty?.();
      const { code, output } = await runDemo(databaseUrl);
      if (code !== 0) throw new Error(`the demo exited with ${code}:\n${output}`);

      const received = [...output.matchAll(/received #\d+: Order \d+ (\w+), webhook-id \S+; (.+); answered (\d+)/g)];
      expect(received.map(([, state]) => state)).toEqual(['CONFIRMED', 'SHIPPED', 'SHIPPED', 'CANCELLED', 'CONFIRMED']);
      expect(received.map(([, , signatures]) => signatures)).toEqual(Array(5).fill('X-Signature valid, Standard Webhooks valid'));
      expect(received.map(([, , , status]) => status)).toEqual(['200', '503', '200', '200', '200']);
      expect(output).toMatch(/answered 503 \(refused once on purpose\)\n.*answered 200 \(retry of #2, [\d.]+ s later\)/);

      expect(output.match(/^\s+\d+\s+\d+\s+Order \d+ → \w+\s+SUCCEEDED\s+[12]$/gm)).toHaveLength(4);
      const attempts = attemptRows(output);
      expect(attempts).toHaveLength(5);
      const failed = attempts.filter((attempt) => attempt.outcome !== 'SUCCEEDED');
      expect(failed).toEqual([expect.objectContaining({ outcome: 'HTTP_ERROR', status: '503', attemptNumber: 1 })]);
      expect(attempts).toContainEqual({ delivery: failed[0].delivery, attemptNumber: 2, outcome: 'SUCCEEDED', status: '200' });

      expect(output).toContain('tenant 8 has no listener: 0 deliveries recorded');
      expect(output).toContain('✓ Demo passed: 4 deliveries in 5 requests');
      expect(output).not.toMatch(/INVALID|Demo failed/);
    },
    DEMO_TIMEOUT_MS + 10_000,
  );
});
