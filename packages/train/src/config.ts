import { hasArch, nearestName, unknownArch } from '@thor-ts/model';

import { ConfigError } from './config_error.js';

/** Everything a training run needs; `thor-ts train` reads it from a preset, a file and overrides. */
export interface TrainConfig {
  /** Dataset root holding `train/` and `val/` class folders (ImageNet layout). */
  data: string;
  /** Where metrics (metrics.jsonl), checkpoints and the final weights go. */
  out: string;
  /**
   * The network: `arch` names a registered architecture (@thor-ts/model's `registerArch`; built
   * in: every ResNet, the CIFAR ResNets and `resnetLight`), built with `classes`, the run's seed
   * and this section's other fields (the built-in ones take `layers`, `widths`, `batchNorm`,
   * `zeroInitResidual`; a registered builder checks its own).
   */
  model: {
    arch: string;
    classes: number;
    layers?: number[];
    widths?: number[];
    batchNorm?: 'torchvision' | 'mindspore';
    zeroInitResidual?: boolean;
    [field: string]: unknown;
  };
  /**
   * Images: 'imagenet' (RandomResizedCrop 224 + flip / resize 256 + crop 224), 'small' (flip
   * only), or an {@link AugmentSpec} (RandomResizedCrop at any size and scale range).
   */
  augment: 'imagenet' | 'small' | AugmentSpec;
  optimizer: 'sgd' | 'thor';
  epochs: number;
  /** Global batch: split evenly over the workers. */
  batchSize: number;
  /**
   * Micro-batches each worker sums its gradients over before one all-reduce, for when its share of
   * the batch does not fit in memory at once (batchSize / workers / accumulate images each). Default 1.
   */
  accumulate?: number;
  /**
   * The learning rate by step: `schedule` from `base`, after a linear warm-up from 0 over the
   * first `warmupEpochs` epochs when that is given (default none). 'poly' is
   * base · (1 − step/steps)^`power` over the run (PyTorch's PolynomialLR; `power` only there),
   * or over its first `decayEpochs` epochs when given (PyTorch's `total_iters`; may exceed the
   * run, as MindSpore's 0.05803·(1 − e/53)^4.0839 over 45 epochs does).
   */
  lr: {
    schedule: 'cosine' | 'linear' | 'poly' | 'thor' | 'constant';
    base: number;
    power?: number;
    decayEpochs?: number;
    warmupEpochs?: number;
  };
  momentum: number;
  /** Nesterov's momentum (PyTorch's `nesterov=True`). Default false. */
  nesterov?: boolean;
  weightDecay: number;
  labelSmoothing: number;
  thor: {
    dampingBase: number;
    dampingDecay: number;
    frequency: number;
    blockSize: number | null;
    /** kfac-pytorch's KL clipping of each step (absent, as the reference: none). */
    klClip?: number;
    /**
     * kfac-pytorch's running average of the factors (absent, as the reference: none); then
     * `frequency` is how often the inverses are made, `factorEvery` how often the factors.
     */
    factorDecay?: number;
    factorEvery?: number;
  };
  /**
   * Weights to start from instead of the architecture's initialization (fine-tuning, warm
   * starts): a torchvision-layout safetensors file, as `saveWeights` writes. Strict by default:
   * any missing, unexpected or mis-shaped tensor is an error that lists them; `strict: false`
   * loads what matches (a new classifier, for instance) and logs the rest. A run that resumes
   * from its checkpoint ignores it.
   */
  init?: { weights: string; strict?: boolean };
  /** Per-image normalization (ImageNet's by default). */
  normalization?: { mean: [number, number, number]; std: [number, number, number] };
  seed: number;
  /** Checkpoint every N steps (0: only at each epoch's end). */
  checkpointEvery: number;
  /**
   * Scores on the val split per epoch, evenly spaced, the last at the epoch's end (PyTorch
   * Lightning's `val_check_interval` as a count). Default 1.
   */
  evalsPerEpoch?: number;
  /**
   * A directory for a TensorBoard event file of the run's scalars (PyTorch's
   * `SummaryWriter(log_dir)`: the loss, learning rate, damping, img/s and refresh time of each
   * step, and each evaluation's metrics); absent: none. steps.csv and metrics.csv are written in
   * `out` either way.
   */
  tensorboard?: string;
}

/**
 * A training augmentation given by its parts, torchvision's transforms in this order:
 * `RandomResizedCrop(size, scale, ratio)` when `randomResizedCrop` is given, then
 * `RandomHorizontalFlip(0.5)` unless `flip` is false. Evaluation resizes the shorter side to
 * `evalResize` (default: the crop's size) and center-crops the crop's size; without a crop the
 * val images are used as they are.
 */
export interface AugmentSpec {
  randomResizedCrop?: {
    size: number;
    /** The crop's area as a fraction of the image's. Default [0.08, 1] (ImageNet's). */
    scale?: [number, number];
    /** The crop's width / height, drawn log-uniformly. Default [3/4, 4/3]. */
    ratio?: [number, number];
  };
  flip?: boolean;
  evalResize?: number;
}

/** Each top-level field: what it must be, and the check. */
const fields: Record<string, [string, (v: unknown) => boolean]> = {
  data: ['a dataset root (a non-empty string)', (v) => typeof v === 'string' && v.length > 0],
  out: ['an output directory (a non-empty string)', (v) => typeof v === 'string' && v.length > 0],
  augment: [
    "'imagenet', 'small' or an object",
    (v) => v === 'imagenet' || v === 'small' || (typeof v === 'object' && v !== null),
  ],
  optimizer: ["'sgd' or 'thor'", (v) => v === 'sgd' || v === 'thor'],
  epochs: ['an integer ≥ 1', (v) => Number.isInteger(v) && (v as number) >= 1],
  batchSize: ['an integer ≥ 1', (v) => Number.isInteger(v) && (v as number) > 0],
  momentum: ['a number in [0, 1)', (v) => typeof v === 'number' && v >= 0 && v < 1],
  weightDecay: ['a number ≥ 0', (v) => typeof v === 'number' && v >= 0],
  labelSmoothing: ['a number in [0, 1)', (v) => typeof v === 'number' && v >= 0 && v < 1],
  seed: ['an integer', (v) => Number.isInteger(v)],
  checkpointEvery: ['an integer ≥ 0', (v) => Number.isInteger(v) && (v as number) >= 0],
  nesterov: ['true, false or absent', (v) => v === undefined || typeof v === 'boolean'],
  accumulate: [
    'an integer ≥ 1, or absent',
    (v) => v === undefined || (Number.isInteger(v) && (v as number) >= 1),
  ],
  evalsPerEpoch: [
    'an integer ≥ 1, or absent',
    (v) => v === undefined || (Number.isInteger(v) && (v as number) >= 1),
  ],
  tensorboard: [
    'a directory (a non-empty string), or absent',
    (v) => v === undefined || (typeof v === 'string' && v.length > 0),
  ],
};

/** A found value as the message shows it (JSON, but NaN and undefined by name). */
function shown(v: unknown): string {
  return v === undefined || (typeof v === 'number' && !Number.isFinite(v))
    ? String(v)
    : JSON.stringify(v);
}

/** The fields of each section; any other key is refused (with the nearest known one). */
const KNOWN: Record<string, readonly string[]> = {
  '': [
    'data',
    'out',
    'model',
    'augment',
    'optimizer',
    'epochs',
    'batchSize',
    'accumulate',
    'lr',
    'momentum',
    'nesterov',
    'weightDecay',
    'labelSmoothing',
    'thor',
    'init',
    'normalization',
    'seed',
    'checkpointEvery',
    'evalsPerEpoch',
    'tensorboard',
    // Written into a run's config.json: the workers it ran on.
    'workers',
  ],
  lr: ['schedule', 'base', 'power', 'decayEpochs', 'warmupEpochs'],
  thor: [
    'dampingBase',
    'dampingDecay',
    'frequency',
    'blockSize',
    'klClip',
    'factorDecay',
    'factorEvery',
  ],
  init: ['weights', 'strict'],
  normalization: ['mean', 'std'],
};

/** Refuses a key of `section` that is not one of its fields, suggesting the nearest. */
function refuseUnknownKeys(value: unknown, section: string, where: string): void {
  if (typeof value !== 'object' || value === null) return;
  const known = KNOWN[section] as readonly string[];
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const near = nearestName(key, known);
    throw new ConfigError(
      `${where}: field '${section === '' ? key : `${section}.${key}`}' is not a config field${near === undefined ? '' : ` (did you mean '${section === '' ? near : `${section}.${near}`}'?)`}; expected ${known.join(', ')}`,
    );
  }
}

/** Checks a config, naming the first bad field, what it expected and what it found. */
export function validateConfig(c: TrainConfig, where = 'config'): TrainConfig {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) {
    throw new ConfigError(`${where}: expected a config object, found ${shown(c)}`);
  }
  refuseUnknownKeys(c, '', where);
  for (const section of ['lr', 'thor', 'init', 'normalization']) {
    refuseUnknownKeys((c as unknown as Record<string, unknown>)[section], section, where);
  }
  for (const [name, [expected, ok]] of Object.entries(fields)) {
    const value = (c as unknown as Record<string, unknown>)[name];
    if (!ok(value))
      throw new ConfigError(
        `${where}: field '${name}' expected ${expected}, found ${shown(value)}`,
      );
  }
  if (typeof c.model !== 'object' || c.model === null || !hasArch(c.model.arch)) {
    throw new ConfigError(`${where}: field 'model.arch' ${unknownArch(c.model?.arch)}`);
  }
  if (!(Number.isInteger(c.model.classes) && c.model.classes > 1)) {
    throw new ConfigError(
      `${where}: field 'model.classes' expected an integer > 1, found ${shown(c.model.classes)}`,
    );
  }
  const schedules = ['cosine', 'linear', 'poly', 'thor', 'constant'];
  if (!schedules.includes(c.lr?.schedule) || !(c.lr.base > 0)) {
    throw new ConfigError(
      `${where}: field 'lr' expected { schedule: ${schedules.join('|')}, base > 0 }, found ${JSON.stringify(c.lr)}`,
    );
  }
  const power = c.lr.power;
  const powerOk =
    c.lr.schedule === 'poly'
      ? typeof power === 'number' && power > 0 && Number.isFinite(power)
      : power === undefined;
  if (!powerOk) {
    const expected =
      c.lr.schedule === 'poly' ? 'a finite number > 0' : `absent (schedule '${c.lr.schedule}')`;
    throw new ConfigError(`${where}: field 'lr.power' expected ${expected}, found ${shown(power)}`);
  }
  const decayEpochs = c.lr.decayEpochs;
  if (
    decayEpochs !== undefined &&
    !(c.lr.schedule === 'poly' && typeof decayEpochs === 'number' && decayEpochs > 0)
  ) {
    const expected =
      c.lr.schedule === 'poly' ? 'a number > 0, or absent' : `absent (schedule '${c.lr.schedule}')`;
    throw new ConfigError(
      `${where}: field 'lr.decayEpochs' expected ${expected}, found ${shown(decayEpochs)}`,
    );
  }
  if (typeof c.augment === 'object') validateAugment(c.augment, where);
  const warmup = c.lr.warmupEpochs;
  if (warmup !== undefined && !(typeof warmup === 'number' && warmup >= 0 && warmup < c.epochs)) {
    throw new ConfigError(
      `${where}: field 'lr.warmupEpochs' expected a number in [0, epochs = ${c.epochs}), or absent, found ${shown(warmup)}`,
    );
  }
  if (c.optimizer === 'thor' && !(c.thor?.frequency >= 1 && c.thor.dampingBase > 0)) {
    throw new ConfigError(
      `${where}: field 'thor' expected { dampingBase > 0, dampingDecay, frequency ≥ 1, blockSize }, found ${JSON.stringify(c.thor)}`,
    );
  }
  const block = c.thor?.blockSize;
  if (block !== undefined && block !== null && !(Number.isInteger(block) && block >= 1)) {
    throw new ConfigError(
      `${where}: field 'thor.blockSize' expected an integer ≥ 1, null for whole factors, or absent (128), found ${shown(block)}`,
    );
  }
  const init = c.init as unknown;
  if (init !== undefined) {
    const i = init as { weights?: unknown; strict?: unknown };
    if (typeof init !== 'object' || init === null || Array.isArray(init)) {
      throw new ConfigError(
        `${where}: field 'init' expected an object { weights, strict? }, or absent, found ${shown(init)}`,
      );
    }
    if (typeof i.weights !== 'string' || i.weights === '') {
      throw new ConfigError(
        `${where}: field 'init.weights' expected a safetensors file (a non-empty string), found ${shown(i.weights)}`,
      );
    }
    if (i.strict !== undefined && typeof i.strict !== 'boolean') {
      throw new ConfigError(
        `${where}: field 'init.strict' expected true, false or absent, found ${shown(i.strict)}`,
      );
    }
  }
  const n = c.normalization;
  if (n !== undefined) {
    const triple = (v: unknown, ok: (x: number) => boolean) =>
      Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && ok(x));
    if (!(typeof n === 'object' && n !== null && triple(n.mean, Number.isFinite))) {
      throw new ConfigError(
        `${where}: field 'normalization.mean' expected 3 finite numbers (one per channel), found ${shown(n?.mean)}`,
      );
    }
    if (!triple(n.std, (x) => x > 0 && Number.isFinite(x))) {
      throw new ConfigError(
        `${where}: field 'normalization.std' expected 3 finite numbers > 0 (one per channel), found ${shown(n.std)}`,
      );
    }
  }
  const clip = c.thor?.klClip;
  if (clip !== undefined && !(typeof clip === 'number' && clip > 0 && Number.isFinite(clip))) {
    throw new ConfigError(
      `${where}: field 'thor.klClip' expected a finite number > 0, or absent, found ${shown(clip)}`,
    );
  }
  const decay = c.thor?.factorDecay;
  if (decay !== undefined && !(typeof decay === 'number' && decay >= 0 && decay < 1)) {
    throw new ConfigError(
      `${where}: field 'thor.factorDecay' expected a number in [0, 1), or absent, found ${shown(decay)}`,
    );
  }
  const factorEvery = c.thor?.factorEvery;
  if (
    factorEvery !== undefined &&
    !(decay !== undefined && Number.isInteger(factorEvery) && factorEvery >= 1)
  ) {
    throw new ConfigError(
      `${where}: field 'thor.factorEvery' expected an integer ≥ 1 beside thor.factorDecay, or absent, found ${shown(factorEvery)}`,
    );
  }
  return c;
}

/** An {@link AugmentSpec}'s fields, each named by its path when it is wrong. */
function validateAugment(a: AugmentSpec, where: string): void {
  const known = ['randomResizedCrop', 'flip', 'evalResize'];
  const unknown = Object.keys(a).find((k) => !known.includes(k));
  if (unknown !== undefined) {
    throw new ConfigError(
      `${where}: field 'augment.${unknown}' is not an augmentation; expected ${known.join(', ')}`,
    );
  }
  const positiveInteger = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  const range = (v: unknown, max: number) =>
    Array.isArray(v) &&
    v.length === 2 &&
    v.every((x) => typeof x === 'number' && x > 0 && x <= max) &&
    (v[0] as number) <= (v[1] as number);
  const crop = a.randomResizedCrop;
  const checks: [string, unknown, string, boolean][] = [
    ['flip', a.flip, 'true, false or absent', a.flip === undefined || typeof a.flip === 'boolean'],
    [
      'evalResize',
      a.evalResize,
      'an integer ≥ 1, or absent',
      a.evalResize === undefined || positiveInteger(a.evalResize),
    ],
    [
      'randomResizedCrop',
      crop,
      '{ size, scale?, ratio? }, or absent',
      crop === undefined || (typeof crop === 'object' && crop !== null),
    ],
  ];
  if (typeof crop === 'object' && crop !== null) {
    checks.push(
      ['randomResizedCrop.size', crop.size, 'an integer ≥ 1', positiveInteger(crop.size)],
      [
        'randomResizedCrop.scale',
        crop.scale,
        '[min, max] with 0 < min ≤ max ≤ 1, or absent',
        crop.scale === undefined || range(crop.scale, 1),
      ],
      [
        'randomResizedCrop.ratio',
        crop.ratio,
        '[min, max] with 0 < min ≤ max, or absent',
        crop.ratio === undefined || range(crop.ratio, Infinity),
      ],
    );
  }
  for (const [path, value, expected, ok] of checks) {
    if (!ok)
      throw new ConfigError(
        `${where}: field 'augment.${path}' expected ${expected}, found ${shown(value)}`,
      );
  }
}

const imagenetBase = {
  data: '',
  out: 'runs/imagenet',
  model: { arch: 'resnet50', classes: 1000, batchNorm: 'mindspore', zeroInitResidual: true },
  augment: 'imagenet',
  // 8 workers × 32 images, as the reference; 32 ResNet-50 images at 224² do not fit one wasm heap
  // (4 GiB; 24 do), so each worker sums two micro-batches of 16 (`--accumulate 1` where they fit).
  batchSize: 256,
  accumulate: 2,
  momentum: 0.9,
  labelSmoothing: 0.1,
  seed: 1,
  checkpointEvery: 1000,
  thor: { dampingBase: 0.03, dampingDecay: 0.87, frequency: 834, blockSize: 128 },
} as const;

/** Named starting points: the reference's ImageNet runs (ResNet-50, THOR 45 epochs, SGD 90). */
export const presets: Record<string, Omit<TrainConfig, 'data'> & { data: string }> = {
  // MindSpore resnet_thor on 8 Ascend × 32: 45 epochs, lr 0.045·(1 − e/70)^6 with halvings, wd 5e-4.
  'imagenet-resnet50-thor': {
    ...imagenetBase,
    model: { ...imagenetBase.model },
    thor: { ...imagenetBase.thor },
    optimizer: 'thor',
    epochs: 45,
    lr: { schedule: 'thor', base: 0.045 },
    weightDecay: 5e-4,
  },
  // The reference's SGD baseline: 90 epochs, lr linear from 0.1 to 0, wd 1e-4.
  'imagenet-resnet50-sgd': {
    ...imagenetBase,
    model: { ...imagenetBase.model },
    thor: { ...imagenetBase.thor },
    optimizer: 'sgd',
    epochs: 90,
    lr: { schedule: 'linear', base: 0.1 },
    weightDecay: 1e-4,
  },
};
