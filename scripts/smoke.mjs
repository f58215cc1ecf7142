// Installs the packed build into a CommonJS app on NestJS 11 and an ES module app on NestJS 12,
// each in a folder of its own outside the repository, and runs them; then type-checks TypeScript
// consumers against those installs, compiled to CommonJS and as ES modules. Run `npm run build` first.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

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
  checkSourceMaps(join(dir, 'node_modules/nestjs-webhook-listener'));
}

/** Every source a map of the installed package names is installed with it: stack traces and debuggers find it. */
function checkSourceMaps(installed) {
  const maps = readdirSync(installed, { recursive: true }).filter((file) => file.endsWith('.js.map'));
  if (maps.length === 0) throw new Error(`no source maps installed in ${installed}`);
  for (const map of maps) {
    const { sources } = JSON.parse(readFileSync(join(installed, map), 'utf8'));
    const missing = sources.filter((source) => !existsSync(resolve(installed, dirname(map), source)));
    if (missing.length > 0) throw new Error(`the installed ${map} names sources that are not installed: ${missing.join(', ')}`);
  }
  console.log(`the ${maps.length} source maps of the installed package name installed sources`);
}

// A TypeScript consumer of the package and its /verify subpath, type-checked against an app's install
// with the package's own declarations checked too (skipLibCheck off). Errors inside the other
// packages' declarations are theirs, and are left to their own checks.
const consumer = `import { WebhookModule, type WebhookModuleOptions } from 'nestjs-webhook-listener';
import { verifyStandardWebhook, verifyXSignature, WebhookVerificationKeyError } from 'nestjs-webhook-listener/verify';

const options: WebhookModuleOptions = { worker: { enabled: false } };
export const webhookModule = WebhookModule.forRoot(options);

export function isSigned(headers: Record<string, string>, rawBody: string, publicKey: string, secret: string): boolean {
  return verifyXSignature(headers['x-signature'], rawBody, publicKey) && verifyStandardWebhook(headers, rawBody, secret);
}

export { WebhookVerificationKeyError };
`;
const ours = (line) => line.includes('error TS') && (line.startsWith('consumer.') || line.includes('nestjs-webhook-listener/'));

function typeCheck(app, name, file, compilerOptions) {
  const consumerDir = join(work, app, name);
  mkdirSync(consumerDir);
  writeFileSync(join(consumerDir, file), consumer);
  writeFileSync(
    join(consumerDir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'es2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        typeRoots: [join(root, 'node_modules/@types')],
        types: ['node'],
        ...compilerOptions,
      },
      files: [file],
    }),
  );
  console.log(`\n== ${app}/${name}: tsc`);
  let compilerOutput = '';
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', consumerDir], {
      cwd: consumerDir,
      encoding: 'utf8',
    });
  } catch (error) {
    compilerOutput = String(error.stdout);
  }
  const errors = compilerOutput.split('\n').filter(ours);
  if (errors.length > 0) {
    console.error(errors.join('\n'));
    throw new Error(
      `the TypeScript consumer ${app}/${name} has ${errors.length} type error(s) in its own code or in this package's declarations`,
    );
  }
  console.log(`types of nestjs-webhook-listener and nestjs-webhook-listener/verify resolve and check (${JSON.stringify(compilerOptions)})`);
}

// With "module": "commonjs", TypeScript resolves the node10 way, which ignores `exports`: the types of
// the /verify subpath are found through `typesVersions` only.
typeCheck('cjs-nest11', 'typescript-commonjs', 'consumer.ts', { module: 'commonjs' });
// An ES module consumer is given the ES module build's declarations.
typeCheck('esm-nest12', 'typescript-node16', 'consumer.mts', { module: 'node16', moduleResolution: 'node16' });
typeCheck('esm-nest12', 'typescript-bundler', 'consumer.ts', { module: 'esnext', moduleResolution: 'bundler' });
