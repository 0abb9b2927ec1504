import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import { describe, expect, it } from 'vitest';

import {
  buildSchedules,
  compare,
  flatten,
  formatDuration,
  Progress,
  lineChart,
  presets,
  unflatten,
  validateConfig,
  type EpochMetrics,
  type TrainConfig,
} from '../dist/index.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));

const epoch = (e: number, top1: number, seconds: number): EpochMetrics => ({
  optimizer: 'sgd',
  epoch: e,
  step: e * 10,
  trainLoss: 1,
  top1,
  top5: 1,
  trainSeconds: seconds,
  wallSeconds: seconds,
  imagesPerSecond: 1,
  lr: 0.1,
  refreshes: 0,
});

describe('configs', () => {
  it('name the bad field, what it needs and what was found', () => {
    const ok = { ...(presets['fashion-mnist-thor'] as TrainConfig), data: '/d' };
    expect(validateConfig(ok)).toBe(ok);
    expect(() => validateConfig({ ...ok, batchSize: 0 }, 'my.json')).toThrow(
      "my.json: field 'batchSize' expected an integer ≥ 1, found 0",
    );
    expect(() => validateConfig({ ...ok, epochs: Number('abc') })).toThrow(
      "config: field 'epochs' expected a number > 0, found NaN",
    );
    expect(() => validateConfig({ ...ok, augment: undefined as never })).toThrow(
      "config: field 'augment' expected 'imagenet' or 'small', found undefined",
    );
    expect(() => validateConfig({ ...ok, model: { ...ok.model, arch: 'vgg' as never } })).toThrow(
      /field 'model.arch' expected one of resnetLight, .*found "vgg"/,
    );
    expect(() => validateConfig({ ...ok, lr: { schedule: 'exp' as never, base: 1 } })).toThrow(
      /field 'lr' expected/,
    );
    expect(() => validateConfig({ ...ok, thor: { ...ok.thor, klClip: 0 } })).toThrow(
      "config: field 'thor.klClip' expected a finite number > 0, or absent, found 0",
    );
    expect(validateConfig({ ...ok, thor: { ...ok.thor, klClip: 0.001 } }).thor.klClip).toBe(0.001);
  });

  it('take a linear warm-up before the schedule, and Nesterov momentum', () => {
    const ok: TrainConfig = {
      ...(presets['fashion-mnist-sgd'] as TrainConfig),
      data: '/d',
      lr: { schedule: 'cosine', base: 0.2 },
    };
    expect(() => validateConfig({ ...ok, nesterov: 'yes' as never })).toThrow(
      `config: field 'nesterov' expected true, false or absent, found "yes"`,
    );
    expect(() => validateConfig({ ...ok, lr: { ...ok.lr, warmupEpochs: 10 } })).toThrow(
      "config: field 'lr.warmupEpochs' expected a number in [0, epochs = 10), or absent, found 10",
    );
    // 10 epochs of 4 steps, cosine from 0.2 over 40 steps, warmed up over the first epoch: step 4
    // is the cosine's own 0.1·(1 + cos(π·4/40)) = 0.1951057; steps 0–3 rise linearly to it from 0;
    // step 39 is 0.1·(1 − cos(π/40)) = 0.0003083, as without a warm-up.
    const { lr } = buildSchedules({ ...ok, lr: { ...ok.lr, warmupEpochs: 1 } }, 4);
    const at = lr as (step: number) => number;
    const top = 0.1951057;
    [0, top / 4, top / 2, (3 * top) / 4, top].forEach((v, step) =>
      expect(at(step)).toBeCloseTo(v, 6),
    );
    expect(at(39)).toBeCloseTo(0.0003083, 6);
    expect(buildSchedules(ok, 4).lr).not.toBe(lr);
    // 'poly' with power 2 over 40 steps: 0.2·(1 − 20/40)² = 0.05 halfway.
    const poly = buildSchedules({ ...ok, lr: { schedule: 'poly', base: 0.2, power: 2 } }, 4).lr;
    expect((poly as (step: number) => number)(20)).toBeCloseTo(0.05, 12);
    expect(() => validateConfig({ ...ok, lr: { schedule: 'poly', base: 0.2 } })).toThrow(
      "config: field 'lr.power' expected a finite number > 0, found undefined",
    );
    expect(() => validateConfig({ ...ok, lr: { ...ok.lr, power: 2 } })).toThrow(
      "config: field 'lr.power' expected absent (schedule 'cosine'), found 2",
    );
    expect((buildSchedules(ok, 4).lr as (step: number) => number)(0)).toBeCloseTo(0.2, 9);
  });

  it("hold the reference's ImageNet runs", () => {
    const thor = presets['imagenet-resnet50-thor']!;
    const sgd = presets['imagenet-resnet50-sgd']!;
    expect([
      thor.epochs,
      thor.lr,
      thor.weightDecay,
      thor.thor.frequency,
      thor.thor.blockSize,
    ]).toEqual([45, { schedule: 'thor', base: 0.045 }, 5e-4, 834, 128]);
    expect([sgd.epochs, sgd.lr, sgd.weightDecay]).toEqual([
      90,
      { schedule: 'linear', base: 0.1 },
      1e-4,
    ]);
    expect([thor.batchSize, thor.accumulate, thor.labelSmoothing, thor.model.batchNorm]).toEqual([
      256,
      2,
      0.1,
      'mindspore',
    ]);
  });
});

describe('the comparison', () => {
  it('finds the first THOR epoch at SGD’s final top-1 and checks ≤ 0.55× epochs and less time', () => {
    const sgd = [1, 2, 3, 4].map((e) => epoch(e, 0.5 + e / 10, e * 100));
    expect(compare(sgd, [epoch(1, 0.7, 90), epoch(2, 0.95, 180)])).toMatchObject({
      target: 0.9,
      thorEpochs: 2,
      met: true,
    });
    // 3 of 4 epochs is more than 0.55×.
    expect(compare(sgd, [epoch(1, 0.7, 90), epoch(2, 0.8, 180), epoch(3, 0.91, 270)]).met).toBe(
      false,
    );
    // Reached in time by epochs but slower in seconds.
    expect(compare(sgd, [epoch(1, 0.7, 300), epoch(2, 0.95, 420)]).met).toBe(false);
    expect(compare(sgd, [epoch(1, 0.7, 90)])).toMatchObject({ thorEpochs: undefined, met: false });
  });

  it('plots series as SVG', () => {
    const svg = lineChart('t', 'x', 'y', [
      {
        name: 'a<b',
        color: 'red',
        points: [
          [0, 1],
          [1, 2],
        ],
      },
    ]);
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('a&lt;b');
    expect(svg).toContain('<path d="M');
  });
});

describe('progress', () => {
  const state = {
    optimizer: 'thor',
    epoch: 2,
    epochs: 45,
    stepInEpoch: 3,
    stepsPerEpoch: 12,
    loss: 1.23456,
    imagesPerSecond: 812.5,
    etaSeconds: 3725,
  };

  it('redraws one line on a terminal: a bar, loss, img/s and ETA', () => {
    const out: string[] = [];
    const p = new Progress('tty', (t) => out.push(t));
    p.update(state);
    p.update({ ...state, stepInEpoch: 4 }); // within 100 ms: not drawn
    p.update({ ...state, stepInEpoch: 12 }); // the epoch's last step: always drawn
    p.finishLine();
    expect(out).toEqual([
      '\rthor epoch 2/45 [######..................] 3/12 loss 1.2346 812.5 img/s ETA 1h02m05s\x1b[K',
      '\rthor epoch 2/45 [########################] 12/12 loss 1.2346 812.5 img/s ETA 1h02m05s\x1b[K',
      '\n',
    ]);
  });

  it('prints plain lines at an interval elsewhere, and knows a terminal', () => {
    const out: string[] = [];
    const p = new Progress('lines', (t) => out.push(t), 3600);
    p.update(state);
    p.update({ ...state, stepInEpoch: 12 });
    expect(out).toEqual(['thor epoch 2/45 step 3/12 loss 1.2346 812.5 img/s ETA 1h02m05s\n']);
    expect(Progress.modeFor({ isTTY: true }, {})).toBe('tty');
    expect(Progress.modeFor({}, { THOR_TS_TTY: '1' })).toBe('tty');
    expect(Progress.modeFor({}, {})).toBe('lines');
    expect([formatDuration(0.4), formatDuration(75), formatDuration(3600)]).toEqual([
      '0s',
      '1m15s',
      '1h00m00s',
    ]);
  });
});

describe('flattening for collectives', () => {
  it('round-trips named tensors with extra values', async () => {
    await initBackend({ backend: 'cpu' });
    const t = new Map<string, tf.Tensor>([
      ['a', tf.tensor2d([1, 2, 3, 4], [2, 2])],
      ['b', tf.tensor1d([5])],
    ]);
    const flat = flatten(['b', 'a'], t, [9]);
    expect(Array.from(flat)).toEqual([5, 1, 2, 3, 4, 9]);
    const { tensors, extra } = unflatten(['b', 'a'], t, flat);
    expect(tensors.get('a')?.shape).toEqual([2, 2]);
    expect(Array.from(tensors.get('a')!.dataSync())).toEqual([1, 2, 3, 4]);
    expect(Array.from(extra)).toEqual([9]);
  });
});

describe('npm run reproduce -- --quick', () => {
  it('prepares real images, trains SGD and THOR on 8 workers, and writes the report and plots', async () => {
    const out = await mkdtemp(join(tmpdir(), 'thor-ts-repro-'));
    try {
      const { stdout } = await run(
        process.execPath,
        [join(root, 'examples/thor-vs-sgd/reproduce.mjs'), '--quick', '--out', out],
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
        [
          join(root, 'examples/thor-vs-sgd/reproduce.mjs'),
          '--quick',
          '--nproc',
          '2',
          '--seeds',
          '3,4',
          '--out',
          out,
        ],
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
      expect(report).toContain('`npm run reproduce -- --seeds 3,4 --out ');
      // The mean of the two SGD scores, as the table's last row shows it.
      const mean = (((seeds[0]!.sgdTop1 + seeds[1]!.sgdTop1) / 2) * 100).toFixed(2);
      expect(report).toMatch(new RegExp(`\\| mean ± sd \\| ${mean.replace('.', '\\.')} ± `));
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 600_000);
});
