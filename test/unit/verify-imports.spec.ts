import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** Every module `file` loads, directly or through other project files. */
function importGraph(file: string, seen = new Set<string>()): { files: Set<string>; packages: Set<string> } {
  const packages = new Set<string>();
  seen.add(file);
  const source = readFileSync(file, 'utf8');
  for (const [, specifier] of source.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/gm)) {
    if (specifier.startsWith('.')) {
      const next = resolve(dirname(file), specifier.replace(/\.js$/, '.ts'));
      if (!seen.has(next)) importGraph(next, seen).packages.forEach((name) => packages.add(name));
    } else {
      packages.add(specifier);
    }
  }
  return { files: seen, packages };
}

describe('nestjs-webhook-listener/verify', () => {
  it('loads nothing but node built-ins, so receivers need neither NestJS nor TypeORM', () => {
    const { packages, files } = importGraph(resolve('lib/verify/index.ts'));
    expect(files.size).toBeGreaterThan(1);
    expect([...packages].filter((name) => !name.startsWith('node:'))).toEqual([]);
  });
});
