import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { afterEach, beforeEach } from 'vitest';

/**
 * A fresh temporary folder for every test of the calling file (removed after it): `tree.dir`, and
 * `tree.touch(...paths)` to create empty files there (scanning never opens them) with their folders.
 */
export function tempTree(prefix: string): {
  readonly dir: string;
  touch(...paths: string[]): Promise<void>;
} {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      return dir;
    },
    touch: async (...paths: string[]) => {
      for (const path of paths) {
        await mkdir(dirname(join(dir, path)), { recursive: true });
        await writeFile(join(dir, path), '');
      }
    },
  };
}
