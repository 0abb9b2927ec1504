import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { readTarGz } from '../dist/datasets/read_tar_gz.js';

/** Archives written by fixtures/devkit/make_devkit.py with Python's tarfile. */
const fixtures = fileURLToPath(new URL('./fixtures/devkit/', import.meta.url));

describe('readTarGz', () => {
  it('reads short names, and GNU and PAX long names', async () => {
    const devkit = readTarGz(await readFile(join(fixtures, 'ILSVRC2012_devkit_t12.tar.gz')));
    expect([...devkit.keys()]).toEqual([
      'ILSVRC2012_devkit_t12/data/meta.mat',
      'ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt',
    ]);
    const meta = devkit.get('ILSVRC2012_devkit_t12/data/meta.mat')!;
    expect(Buffer.from(meta).equals(await readFile(join(fixtures, 'meta.mat')))).toBe(true);
    const name = `${Array(6).fill('ILSVRC2012_devkit_t12').join('/')}/data/long.txt`;
    for (const format of ['gnu', 'pax']) {
      const files = readTarGz(await readFile(join(fixtures, `long_names_${format}.tar.gz`)));
      expect([...files.keys()]).toEqual([name]);
      expect(new TextDecoder().decode(files.get(name))).toBe(`${format} 145\n`);
    }
  });

  it('says what it found instead of a tar.gz', () => {
    expect(() => readTarGz(Buffer.from('plain text'))).toThrow(/^data that does not gunzip: /);
    expect(() => readTarGz(gzipSync(Buffer.alloc(512, 65)))).toThrow(
      'no tar header at byte 0 of the unzipped archive',
    );
    expect(readTarGz(gzipSync(Buffer.alloc(1024))).size).toBe(0);
  });
});
