import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import type { EpochMetrics, TrainConfig } from '@thor-ts/train';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const reproduce = join(root, 'examples/thor-vs-sgd/reproduce.mjs');

describe('npm run reproduce -- --regime small --quick', () => {
  it('prepares real images, trains SGD and THOR on 8 workers, and writes the report and plots', async () => {
    const out = await mkdtemp(join(tmpdir(), 'thor-ts-repro-'));
    try {
      const { stdout } = await run(
        process.execPath,
        [reproduce, '--regime', 'small', '--quick', '--out', out],
        { maxBuffer: 1 << 24 },
      );
      expect(stdout).toContain('training with SGD for 2 epochs on 8 workers');
      expect(stdout).toContain('training with THOR for 1 epochs on 8 workers');
      const files = (await readdir(out)).sort();
      for (const f of [
        'report.md',
        'top1-vs-epoch.svg',
        'top1-vs-epoch.png',
        'top1-vs-time.png',
        'train-loss.png',
        'metrics-sgd.jsonl',
        'metrics-thor.jsonl',
      ]) {
        expect(files).toContain(f);
      }
      const sgd = (await readFile(join(out, 'metrics-sgd.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as EpochMetrics);
      expect(sgd.map((m) => m.epoch)).toEqual([1, 2]);
      // 10 classes: anything learned beats 10% top-1 (seeded runs land near 15–20% after 2 tiny epochs).
      expect(sgd[1]!.top1).toBeGreaterThan(0.1);
      const report = await readFile(join(out, 'report.md'), 'utf8');
      expect(report).toContain('| SGD | 2 |');
      expect(report).toContain('| THOR | 1 |');

      // thor-ts eval on the saved weights scores what the run's last evaluation scored.
      const evaluated = await run(
        process.execPath,
        [
          join(root, 'packages/train/dist/cli.js'),
          'eval',
          '--config',
          join(out, 'config-sgd.json'),
          '--weights',
          join(out, 'run-sgd', 'weights.safetensors'),
          '--nproc',
          '2',
        ],
        { maxBuffer: 1 << 24 },
      );
      const scored = JSON.parse(evaluated.stdout) as { top1: number; top5: number; images: number };
      expect(scored.top1).toBeCloseTo(sgd[1]!.top1, 6);
      expect(scored.top5).toBeCloseTo(sgd[1]!.top5, 6);
      expect(scored.images).toBe(480);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 600_000);

  it('repeats the comparison for each of --seeds and tabulates them in report.md', async () => {
    const out = await mkdtemp(join(tmpdir(), 'thor-ts-seeds-'));
    try {
      const { stdout } = await run(
        process.execPath,
        [reproduce, '--regime', 'small', '--quick', '--nproc', '2', '--seeds', '3,4', '--out', out],
        { maxBuffer: 1 << 24 },
      );
      expect(stdout).toContain('training with SGD for 2 epochs on 2 workers (seed 3)');
      expect(stdout).toContain('training with THOR for 1 epochs on 2 workers (seed 4)');
      // The first seed's runs where a single seed's go, the second's in seed-4/.
      const config = async (dir: string) =>
        JSON.parse(await readFile(join(dir, 'config-thor.json'), 'utf8')) as TrainConfig;
      expect((await config(out)).seed).toBe(3);
      expect((await config(join(out, 'seed-4'))).seed).toBe(4);
      expect(await readdir(join(out, 'seed-4'))).toContain('report.md');
      const seeds = JSON.parse(await readFile(join(out, 'seeds.json'), 'utf8')) as {
        seed: number;
        sgdTop1: number;
        thorTop1: number;
      }[];
      expect(seeds.map((r) => r.seed)).toEqual([3, 4]);
      const sgd4 = (await readFile(join(out, 'seed-4', 'metrics-sgd.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as EpochMetrics);
      expect(seeds[1]!.sgdTop1).toBe(sgd4[1]!.top1);
      const report = await readFile(join(out, 'report.md'), 'utf8');
      expect(report).toContain('## Every seed (2)');
      expect(report).toContain('`npm run reproduce -- --regime small --seeds 3,4 --out ');
      // The mean of the two SGD scores, as the table's last row shows it.
      const mean = (((seeds[0]!.sgdTop1 + seeds[1]!.sgdTop1) / 2) * 100).toFixed(2);
      expect(report).toMatch(new RegExp(`\\| mean ± sd \\| ${mean.replace('.', '\\.')} ± `));
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 600_000);
});
