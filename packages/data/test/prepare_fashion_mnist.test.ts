import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

import {
  decodeImage,
  FASHION_MNIST_CLASSES,
  openImageNet,
  prepareFashionMnist,
  Random,
} from '../dist/index.js';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const run = (...args: string[]) => promisify(execFile)(process.execPath, [cli, ...args]);

describe('prepareFashionMnist', () => {
  it('writes a small subset in the ImageNet layout that openImageNet reads back', async () => {
    const out = await mkdtemp(join(tmpdir(), 'thor-ts-fmnist-'));
    try {
      const progress: string[] = [];
      const totals = await prepareFashionMnist({
        out,
        limit: 3,
        onProgress: ({ className, train, val }) => progress.push(`${className} ${train} ${val}`),
      });
      expect(totals).toEqual({ train: 30, val: 30 });
      expect(progress).toEqual(FASHION_MNIST_CLASSES.map(([, name]) => `${name} 3 3`));
      const train = await openImageNet(out);
      expect(train.classes).toEqual([
        '0-tshirt-top',
        '1-trouser',
        '2-pullover',
        '3-dress',
        '4-coat',
        '5-sandal',
        '6-shirt',
        '7-sneaker',
        '8-bag',
        '9-ankle-boot',
      ]);
      expect(train.classNames?.[9]).toBe('Ankle boot');
      expect(train.files.slice(0, 2)).toEqual([
        '0-tshirt-top/0-tshirt-top_00000.JPEG',
        '0-tshirt-top/0-tshirt-top_00001.JPEG',
      ]);
      expect(Array.from(train.labels.slice(27))).toEqual([9, 9, 9]);
      expect((await readdir(join(out, 'val', '3-dress'))).length).toBe(3);

      // Train image 0 of class 3 is the first Dress in the package; val image 0 is its 6001st.
      const source = JSON.parse(
        await readFile(
          createRequire(import.meta.url).resolve('fashion-mnist/src/clothes/3.json'),
          'utf8',
        ),
      ).data as number[][];
      for (const [split, k] of [
        ['train', 0],
        ['val', 6000],
      ] as const) {
        const path = join(out, split, '3-dress', '3-dress_00000.JPEG');
        const image = await decodeImage(await readFile(path), [], new Random(0), path);
        expect([image.width, image.height]).toEqual([28, 28]);
        // Gray decodes to R = G = B; JPEG at quality 95 keeps the mean error within a few levels.
        let error = 0;
        for (let p = 0; p < 784; p++) error += Math.abs(image.data[p * 3]! - source[k]![p]!);
        expect(error / 784).toBeLessThan(4);
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('says what it expected of a limit or quality it cannot use', async () => {
    await expect(prepareFashionMnist({ out: 'x', limit: 0 })).rejects.toThrow(
      'Expected a positive integer limit, found 0.',
    );
    await expect(prepareFashionMnist({ out: 'x', quality: 101 })).rejects.toThrow(
      'Expected a JPEG quality from 1 to 100, found 101.',
    );
  });
});

describe('thor-ts-data prepare fashion-mnist', () => {
  it('writes the dataset through prepareFashionMnist, reporting each class', async () => {
    const out = await mkdtemp(join(tmpdir(), 'thor-ts-fmnist-cli-'));
    try {
      const { stdout } = await run('prepare', 'fashion-mnist', '--out', out, '--limit', '1');
      expect(stdout.split('\n').slice(0, 2)).toEqual([
        'T-shirt/top: 1 train, 1 val',
        'Trouser: 1 train, 1 val',
      ]);
      expect(stdout).toContain(`wrote 10 train and 10 val images to ${out}`);
      expect((await openImageNet(out, { split: 'val' })).files.length).toBe(10);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('prints its usage for --help (exit 0) and its version, and takes --flag=value', async () => {
    const { stdout } = await run('--help');
    expect(stdout).toMatch(/^Usage: thor-ts-data prepare fashion-mnist --out <dir>/);
    expect((await run('--version')).stdout).toBe('thor-ts-data 0.0.0\n');
    const out = await mkdtemp(join(tmpdir(), 'thor-ts-fmnist-eq-'));
    try {
      const r = await run('prepare', 'fashion-mnist', `--out=${out}`, '--limit=1');
      expect(r.stdout).toContain(`wrote 10 train and 10 val images to ${out}`);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('says what it expected when the arguments are wrong', async () => {
    const error = await run('prepare', 'mnist', '--out', 'x').catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(error).toMatchObject({ code: 2 });
    expect((error as { stderr: string }).stderr).toMatch(
      /^Expected 'prepare fashion-mnist', found 'prepare mnist'\.\n\nUsage: thor-ts-data prepare fashion-mnist --out <dir>/,
    );
    const limit = await run('prepare', 'fashion-mnist', '--out', 'x', '--limit', '0').catch(
      (e: { stderr: string }) => e,
    );
    expect((limit as { stderr: string }).stderr).toContain(
      "Expected a positive integer for --limit, found '0'.",
    );
  });
});
