// Installs the packed build into a CommonJS app on NestJS 11 and an ES module app on NestJS 12,
// each in a folder of its own outside the repository, and runs them. Run `npm run build` first.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const work = process.env.SMOKE_DIR ?? join(tmpdir(), 'nestjs-webhook-listener-smoke');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

const run = (command, args, cwd) => execFileSync(command, args, { cwd, stdio: 'inherit' });
run('npm', ['pack', '--silent', '--pack-destination', work], root);
const tarball = join(
  work,
  readdirSync(work).find((file) => file.endsWith('.tgz')),
);

for (const [app, entry] of [
  ['cjs-nest11', 'main.cjs'],
  ['esm-nest12', 'main.mjs'],
]) {
  const dir = join(work, app);
  cpSync(join(root, 'test/smoke', app), dir, { recursive: true });
  cpSync(join(root, 'test/smoke/shared'), dir, { recursive: true });
  console.log(`\n== ${app}: npm install`);
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball], dir);
  run(process.execPath, [entry], dir);
}
