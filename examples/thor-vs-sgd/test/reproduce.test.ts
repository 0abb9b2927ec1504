import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import type { EpochMetrics } from '@thor-ts/train';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const reproduce = fileURLToPath(new URL('../reproduce.mjs', import.meta.url));

const metrics = async (dir: string): Promise<EpochMetrics[]> =>
  (await readFile(join(dir, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as EpochMetrics);

describe("npm run reproduce -- --quick (ImageNet's regime)", () => {
  let out: string;
  let first: { stdout: string };
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'thor-ts-imagenet-regime-'));
    first = await run(process.execPath, [reproduce, '--quick', '--nproc', '2', '--out', out], {
      maxBuffer: 1 << 24,
    });
  }, 600_000);
  afterAll(() => rm(out, { recursive: true, force: true }));

  it('trains SGD, SGD for half its epochs and THOR, with crops, and scores them twice an epoch', async () => {
    expect(first.stdout).toContain(
      'seed 1: sgd (SGD for 2 epochs on 2 processes × 4 micro-batches)',
    );
    expect(first.stdout).toContain(
      'seed 1: sgd-half (SGD for 1 epochs on 2 processes × 4 micro-batches)',
    );
    expect(first.stdout).toContain(
      'seed 1: thor (THOR for 1 epochs on 2 processes × 4 micro-batches)',
    );
    const runs = join(out, 'seed-1');
    expect((await readdir(runs)).sort()).toEqual(['sgd', 'sgd-half', 'thor']);
    const sgd = await metrics(join(runs, 'sgd'));
    expect(sgd.map((m) => m.epoch)).toEqual([0.5, 1, 1.5, 2]);
    const config = JSON.parse(await readFile(join(runs, 'thor', 'config.json'), 'utf8'));
    // The study's 8 ranks (of 6 images at --quick's batch of 48), 4 on each of the 2 processes.
    expect([config.workers, config.accumulate, config.batchSize]).toEqual([2, 4, 48]);
    const report = await readFile(join(out, 'report.md'), 'utf8');
    expect(report).toContain('8 ranks of 6 images (2 processes × 4 micro-batches)');
    expect(config.augment).toEqual({
      randomResizedCrop: { size: 28, scale: [0.25, 1] },
      flip: true,
    });
    for (const m of sgd) expect(m.trainTop1).toBeGreaterThan(0);
  });

  it('prints and writes the verdict on each criterion, from the runs’ own figures', async () => {
    expect(first.stdout).toMatch(
      /time to target \(SGD's val top-1 at epoch 2, one seed: [\d.]+%\)/,
    );
    expect(first.stdout).toMatch(
      /final gap \(THOR after half the epochs − SGD after all\): -?[\d.]+/,
    );
    expect(first.stdout).toContain("THOR reaches SGD's final top-1");
    const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8'));
    const sgd = await metrics(join(out, 'seed-1', 'sgd'));
    const thor = await metrics(join(out, 'seed-1', 'thor'));
    // The target is SGD's score nearest 90% of its 2 epochs (epoch 2), the gap THOR's last − SGD's.
    expect(results.target).toBe(sgd[3]!.top1);
    expect(results.rows[0].gap).toBeCloseTo(thor.at(-1)!.top1 - sgd[3]!.top1, 12);
    const report = await readFile(join(out, 'report.md'), 'utf8');
    expect(report).toContain(`**T = ${(sgd[3]!.top1 * 100).toFixed(2)}%**`);
    expect(report).toContain('A --quick run');
    for (const f of ['top1-vs-epoch.png', 'top1-vs-time.svg', 'train-loss.png']) {
      expect(await readdir(out)).toContain(f);
    }
  });

  it('refuses a process count that does not divide the 8 ranks, before training', async () => {
    const err = await run(process.execPath, [
      reproduce,
      '--quick',
      '--nproc',
      '3',
      '--out',
      out,
    ]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain('reproduce: --nproc expected a divisor of 8');
    expect(err?.stderr).toContain('found 3');
  });

  it('goes on where it stopped: a second run trains nothing, and --check exits 1 on an unmet target', async () => {
    const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8'));
    const met = results.timeToTarget.met === results.timeToTarget.of && results.gap.met;
    const again = await run(
      process.execPath,
      [reproduce, '--quick', '--nproc', '2', '--out', out, '--check'],
      { maxBuffer: 1 << 24 },
    ).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    expect(again.stdout.match(/done before/g)).toHaveLength(3);
    expect(again.stdout).not.toContain('[rank 0]');
    expect(again.code).toBe(met ? 0 : 1);
  }, 300_000);
});
