import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  DataLoader,
  DistributedSampler,
  imagenetEvalTransforms,
  type ImageDataset,
  imagenetTrainTransforms,
  randomHorizontalFlip,
  randomResizedCrop,
  centerCrop,
  planView,
  Random,
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

/**
 * The train and eval transforms of `c.augment`. A pipeline without a crop keeps the images at
 * their size: with `size` (the dataset's, from {@link commonImageSize}), an image of another
 * size is resized to it first, so that one odd file cannot break a batch.
 */
export function buildTransforms(
  c: TrainConfig,
  size?: { width: number; height: number },
): { train: Transform[]; eval: Transform[] } {
  if (c.augment === 'imagenet')
    return { train: imagenetTrainTransforms(224), eval: imagenetEvalTransforms(224, 256) };
  const fit = size === undefined ? [] : [resize([size.height, size.width])];
  if (c.augment === 'small') return { train: [...fit, randomHorizontalFlip(0.5)], eval: fit };
  const { randomResizedCrop: crop, flip = true, evalResize } = c.augment;
  const train: Transform[] = crop === undefined ? [...fit] : [];
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
    crop === undefined ? fit : [resize(evalResize ?? crop.size), centerCrop(crop.size)];
  return { train, eval: evalTransforms };
}

/**
 * The size most of `set`'s images have, from the headers of up to 16 files spread over it (read,
 * not decoded); undefined when none can be read. A resize to it is a no-op for those images.
 */
export async function commonImageSize(
  set: ImageDataset,
): Promise<{ width: number; height: number } | undefined> {
  const n = set.files.length;
  const picks = [
    ...new Set(
      Array.from({ length: Math.min(16, n) }, (_, k) => Math.floor((k * n) / Math.min(16, n))),
    ),
  ];
  const counts = new Map<string, number>();
  for (const i of picks) {
    const path = join(set.root, set.files[i] as string);
    const view = await readFile(path)
      .then((bytes) => planView(bytes, [], new Random(0), path))
      .catch(() => undefined);
    if (view === undefined) continue;
    const key = `${view.width}x${view.height}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const best = [...counts].sort((a, b) => b[1] - a[1])[0];
  if (best === undefined) return undefined;
  const [width, height] = best[0].split('x').map(Number) as [number, number];
  return { width, height };
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
