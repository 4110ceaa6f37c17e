/**
 * The package root (package.json beside schemas/ and fixtures/), found above this file, so that
 * shipped data files resolve the same from sources (gateway/util) and from the build (dist/gateway/util).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!(existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'schemas')))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`package root not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return (root = dir);
}

/** A file shipped with the package, e.g. packageFile('schemas', 'config.schema.json'). */
export function packageFile(...parts: string[]): string {
  return join(packageRoot(), ...parts);
}
