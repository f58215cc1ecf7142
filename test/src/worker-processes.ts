import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import type { DataSourceOptions } from 'typeorm';
import type { WebhookModuleOptions } from '../../lib/index.js';

export interface WorkerProcess {
  child: ChildProcess;
  /** Everything the process wrote, for the test's report. */
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** The worker processes run the built package; build it when the sources are newer. */
export function ensureBuilt(): void {
  const built = 'dist/esm/index.js';
  if (existsSync(built) && statSync(built).mtimeMs > newestSource()) return;
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
}

function newestSource(): number {
  const out = execFileSync('git', ['ls-files', '-m', '-o', '--exclude-standard', 'lib'], { encoding: 'utf8' });
  const changed = out.split('\n').filter(Boolean);
  const committed = Number(execFileSync('git', ['log', '-1', '--format=%ct', '--', 'lib'], { encoding: 'utf8' }).trim() || 0) * 1000;
  return Math.max(committed, ...changed.filter(existsSync).map((file) => statSync(file).mtimeMs));
}

export async function startWorker(connection: DataSourceOptions, options: WebhookModuleOptions): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['test/guarantees/worker-process.mjs'], {
    env: {
      ...process.env,
      WEBHOOK_CONNECTION: JSON.stringify(connection),
      WEBHOOK_OPTIONS: JSON.stringify({ ...options, worker: { enabled: true } }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output.push(chunk.toString());
      if (chunk.toString().includes('ready')) resolve();
    });
    child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    void exited.then(({ code }) => reject(new Error(`worker exited with ${code} before it was ready:\n${output.join('')}`)));
  });
  return { child, output, exited };
}
