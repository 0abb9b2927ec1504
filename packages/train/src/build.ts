import {
  DataLoader,
  DistributedSampler,
  imagenetEvalTransforms,
  type ImageDataset,
  imagenetTrainTransforms,
  randomHorizontalFlip,
  randomResizedCrop,
  centerCrop,
  resize,
  type Transform,
} from '@thor-ts/data';
import type { Ring } from '@thor-ts/distributed';
import { buildArch, type Model } from '@thor-ts/model';
import {
  cosineDecay,
  linearDecay,
  linearWarmup,
  polynomialDecay,
  thorDamping,
  thorLearningRate,
  type Schedule,
} from '@thor-ts/optim';

import type { TrainConfig } from './config.js';
import { ConfigError } from './config_error.js';

/**
 * The config's network: the architecture registered as `model.arch`, given the section's other
 * fields and the run's seed. A builder's complaint names the config field it came from.
 */
export function buildModel(c: TrainConfig): Model {
  const { arch, ...fields } = c.model;
  try {
    return buildArch(arch, { ...fields, seed: c.seed });
  } catch (e) {
    throw new ConfigError(`config: model '${arch}': ${(e as Error).message}`, { cause: e });
  }
}

export function buildTransforms(c: TrainConfig): { train: Transform[]; eval: Transform[] } {
  if (c.augment === 'imagenet')
    return { train: imagenetTrainTransforms(224), eval: imagenetEvalTransforms(224, 256) };
  if (c.augment === 'small') return { train: [randomHorizontalFlip(0.5)], eval: [] };
  const { randomResizedCrop: crop, flip = true, evalResize } = c.augment;
  const train: Transform[] = [];
  if (crop !== undefined) {
    train.push(
      randomResizedCrop(crop.size, {
        ...(crop.scale ? { scale: crop.scale } : {}),
        ...(crop.ratio ? { ratio: crop.ratio } : {}),
      }),
    );
  }
  if (flip) train.push(randomHorizontalFlip(0.5));
  const evalTransforms =
    crop === undefined ? [] : [resize(evalResize ?? crop.size), centerCrop(crop.size)];
  return { train, eval: evalTransforms };
}

/** The learning rate by optimizer step. THOR's and the damping's epochs are MindSpore's e = (i + 1)/steps. */
export function buildSchedules(
  c: TrainConfig,
  stepsPerEpoch: number,
): { lr: Schedule; damping: Schedule } {
  const decay = decayOf(c, stepsPerEpoch);
  const warmupSteps = Math.round((c.lr.warmupEpochs ?? 0) * stepsPerEpoch);
  const lr = warmupSteps > 0 ? linearWarmup(decay, warmupSteps) : decay;
  const damping = thorDamping(stepsPerEpoch, {
    base: c.thor.dampingBase,
    decay: c.thor.dampingDecay,
  });
  return { lr, damping };
}

/** `c.lr.schedule` from `c.lr.base` over the run's `c.epochs · stepsPerEpoch` steps. */
function decayOf(c: TrainConfig, stepsPerEpoch: number): Schedule {
  const total = c.epochs * stepsPerEpoch;
  switch (c.lr.schedule) {
    case 'cosine':
      return cosineDecay(c.lr.base, total);
    case 'linear':
      return linearDecay(c.lr.base, 0, total);
    case 'poly': {
      const steps = c.lr.decayEpochs === undefined ? total : c.lr.decayEpochs * stepsPerEpoch;
      return polynomialDecay(c.lr.base, steps, c.lr.power ?? 1);
    }
    case 'thor':
      return thorLearningRate(stepsPerEpoch, { base: c.lr.base });
    case 'constant':
      return c.lr.base;
  }
}

/** This rank's loader: its shard of each batch (val shards are not shuffled, and not cut). */
export function buildLoader(
  config: TrainConfig,
  set: ImageDataset,
  batchSize: number,
  transforms: Transform[],
  ring: Pick<Ring, 'rank' | 'worldSize'>,
  training: boolean,
): DataLoader {
  return new DataLoader(set, {
    batchSize,
    transforms,
    sampler: new DistributedSampler(set.files.length, {
      numReplicas: ring.worldSize,
      rank: ring.rank,
      seed: config.seed,
      shuffle: training,
      dropLast: training,
    }),
    seed: config.seed,
    dropLast: training,
    concurrency: 2,
    ...(config.normalization ? { normalization: config.normalization } : {}),
  });
}

/** An error unless `set` (a split of `config.data`) has the classes `model.classes` says. */
export function checkClasses(config: TrainConfig, set: ImageDataset, split: string): void {
  const found = set.classes.length;
  if (found !== config.model.classes) {
    throw new ConfigError(
      `config: field 'model.classes' is ${config.model.classes}, but ${config.data} has ${found} class folders in its ${split} split`,
    );
  }
}
