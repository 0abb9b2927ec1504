import { fullView, Random } from '@thor-ts/data';
import { describe, expect, it } from 'vitest';

import {
  buildSchedules,
  buildTransforms,
  formatDuration,
  Progress,
  presets,
  validateConfig,
  type TrainConfig,
} from '../dist/index.js';
import { smallSgd, smallThor } from './configs.js';

describe('configs', () => {
  it('name the bad field, what it needs and what was found', () => {
    const ok = { ...smallThor(), data: '/d' };
    expect(validateConfig(ok)).toBe(ok);
    expect(() => validateConfig({ ...ok, batchSize: 0 }, 'my.json')).toThrow(
      "my.json: field 'batchSize' expected an integer ≥ 1, found 0",
    );
    expect(() => validateConfig({ ...ok, epochs: Number('abc') })).toThrow(
      "config: field 'epochs' expected an integer ≥ 1, found NaN",
    );
    // 1.5 epochs would run a second epoch at a learning rate of 0.
    expect(() => validateConfig({ ...ok, epochs: 1.5 })).toThrow(
      "config: field 'epochs' expected an integer ≥ 1, found 1.5",
    );
    // Unknown keys, at the top and in each section, with the nearest known one.
    expect(() => validateConfig({ ...ok, epocs: 3 } as never)).toThrow(
      "config: field 'epocs' is not a config field (did you mean 'epochs'?); expected data, out,",
    );
    expect(() => validateConfig({ ...ok, lr: { ...ok.lr, bas: 1 } as never })).toThrow(
      "config: field 'lr.bas' is not a config field (did you mean 'lr.base'?)",
    );
    expect(() => validateConfig({ ...ok, thor: { ...ok.thor, zzz: 1 } as never })).toThrow(
      "config: field 'thor.zzz' is not a config field; expected dampingBase,",
    );
    expect(validateConfig({ ...ok, workers: 8 } as never)).toBeTruthy();
    expect(() =>
      validateConfig({ ...ok, normalization: { mean: [0, 0, 0], std: [0, 0, 0] } }),
    ).toThrow(
      "config: field 'normalization.std' expected 3 finite numbers > 0 (one per channel), found [0,0,0]",
    );
    expect(() =>
      validateConfig({ ...ok, normalization: { mean: [0.5], std: [1, 1, 1] } as never }),
    ).toThrow(
      "config: field 'normalization.mean' expected 3 finite numbers (one per channel), found [0.5]",
    );
    expect(() => validateConfig({ ...ok, thor: { ...ok.thor, blockSize: 0 } })).toThrow(
      "config: field 'thor.blockSize' expected an integer ≥ 1, null for whole factors, or absent (128), found 0",
    );
    expect(validateConfig({ ...ok, thor: { ...ok.thor, blockSize: null } }).thor.blockSize).toBe(
      null,
    );
    expect(() => validateConfig({ ...ok, augment: undefined as never })).toThrow(
      "config: field 'augment' expected 'imagenet', 'small' or an object, found undefined",
    );
    const crop = { randomResizedCrop: { size: 28, scale: [0.25, 1] as [number, number] } };
    expect(validateConfig({ ...ok, augment: crop }).augment).toBe(crop);
    expect(() =>
      validateConfig({ ...ok, augment: { randomResizedCrop: { size: 28, scale: [0.5, 0.2] } } }),
    ).toThrow(
      "config: field 'augment.randomResizedCrop.scale' expected [min, max] with 0 < min ≤ max ≤ 1, or absent, found [0.5,0.2]",
    );
    expect(() => validateConfig({ ...ok, augment: { randomResizedCrop: { size: 0 } } })).toThrow(
      "config: field 'augment.randomResizedCrop.size' expected an integer ≥ 1, found 0",
    );
    expect(() => validateConfig({ ...ok, augment: { flips: true } as never })).toThrow(
      "config: field 'augment.flips' is not an augmentation; expected randomResizedCrop, flip, evalResize",
    );
    expect(
      validateConfig({ ...ok, init: { weights: 'w.safetensors', strict: false } }),
    ).toBeTruthy();
    expect(() => validateConfig({ ...ok, init: { weights: '' } })).toThrow(
      'config: field \'init.weights\' expected a safetensors file (a non-empty string), found ""',
    );
    expect(() => validateConfig({ ...ok, init: { weights: 'w', strict: 'no' } as never })).toThrow(
      'config: field \'init.strict\' expected true, false or absent, found "no"',
    );
    expect(() => validateConfig({ ...ok, init: { weight: 'w' } as never })).toThrow(
      "config: field 'init.weight' is not a config field (did you mean 'init.weights'?)",
    );
    expect(() => validateConfig({ ...ok, evalsPerEpoch: 0 })).toThrow(
      "config: field 'evalsPerEpoch' expected an integer ≥ 1, or absent, found 0",
    );
    expect(() => validateConfig({ ...ok, model: { ...ok.model, arch: 'vgg' as never } })).toThrow(
      /field 'model.arch' expected a registered architecture, found "vgg"; registered: resnet18, .*resnetLight/,
    );
    expect(() => validateConfig({ ...ok, lr: { schedule: 'exp' as never, base: 1 } })).toThrow(
      /field 'lr' expected/,
    );
    expect(() => validateConfig({ ...ok, thor: { ...ok.thor, klClip: 0 } })).toThrow(
      "config: field 'thor.klClip' expected a finite number > 0, or absent, found 0",
    );
    expect(validateConfig({ ...ok, thor: { ...ok.thor, klClip: 0.001 } }).thor.klClip).toBe(0.001);
    expect(() => validateConfig({ ...ok, thor: { ...ok.thor, factorDecay: 1 } })).toThrow(
      "config: field 'thor.factorDecay' expected a number in [0, 1), or absent, found 1",
    );
    expect(() => validateConfig({ ...ok, thor: { ...ok.thor, factorEvery: 1 } })).toThrow(
      "config: field 'thor.factorEvery' expected an integer ≥ 1 beside thor.factorDecay, or absent, found 1",
    );
  });

  it('take a linear warm-up before the schedule, and Nesterov momentum', () => {
    const ok: TrainConfig = {
      ...smallSgd(),
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
    // decayEpochs past the run (MindSpore's (1 − e/53)^p over 45 epochs): 10 epochs of 4 steps,
    // decaying over 20 epochs, so step 40 (the run's end) is 0.2·(1 − 40/80)² = 0.05, not 0.
    const longer = {
      ...ok,
      lr: { schedule: 'poly' as const, base: 0.2, power: 2, decayEpochs: 20 },
    };
    expect(
      (buildSchedules(validateConfig(longer), 4).lr as (step: number) => number)(40),
    ).toBeCloseTo(0.05, 12);
    expect(() => validateConfig({ ...ok, lr: { ...ok.lr, decayEpochs: 20 } })).toThrow(
      "config: field 'lr.decayEpochs' expected absent (schedule 'cosine'), found 20",
    );
  });

  it('build the augmentation a spec names: RandomResizedCrop to its size, a flip, the eval resize', () => {
    const ok = { ...smallSgd(), data: '/d' };
    const spec = buildTransforms({
      ...ok,
      augment: { randomResizedCrop: { size: 12, scale: [0.25, 1] }, evalResize: 14 },
    });
    expect([spec.train.length, spec.eval.length]).toEqual([2, 2]);
    const image = fullView(30, 20);
    // Any crop drawn is resized to 12×12; eval resizes the shorter side to 14, then crops 12.
    const random = Random.forSample(1, 0, 0);
    const cropped = spec.train[0]!(image, random);
    expect([cropped.width, cropped.height]).toEqual([12, 12]);
    const resized = spec.eval[0]!(image, random);
    expect([resized.width, resized.height]).toEqual([21, 14]);
    expect(spec.eval[1]!(resized, random)).toMatchObject({ width: 12, height: 12 });
    const noFlip = buildTransforms({ ...ok, augment: { flip: false } });
    expect([noFlip.train, noFlip.eval]).toEqual([[], []]);
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
    // A study's command passes the work after this run: the whole ETA comes after the run's.
    expect(Progress.afterFrom({ THOR_TS_ETA_AFTER: '600' })).toBe(600);
    expect(Progress.afterFrom({ THOR_TS_ETA_AFTER: 'soon' })).toBeUndefined();
    expect(Progress.afterFrom({})).toBeUndefined();
    const all = new Progress('lines', (t) => out.push(t), 0);
    all.update({ ...state, afterSeconds: 600 });
    expect(out.at(-1)).toBe(
      'thor epoch 2/45 step 3/12 loss 1.2346 812.5 img/s ETA 1h02m05s, all 1h12m05s\n',
    );
    expect([formatDuration(0.4), formatDuration(75), formatDuration(3600)]).toEqual([
      '0s',
      '1m15s',
      '1h00m00s',
    ]);
  });
});
