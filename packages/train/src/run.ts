import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type * as tf from '@tensorflow/tfjs-core';
import { openImageNet, type DataLoader } from '@thor-ts/data';
import type { Ring } from '@thor-ts/distributed';
import { namedParameters, type Model } from '@thor-ts/model';
import { MomentumSGD, Thor, type Schedule } from '@thor-ts/optim';

import {
  buildLoader,
  buildModel,
  buildSchedules,
  buildTransforms,
  checkClasses,
  commonImageSize,
} from './build.js';
import type { TrainConfig } from './config.js';
import { ConfigError } from './config_error.js';
import { EvalBatches } from './eval_batches.js';
import { Progress } from './progress.js';
import { startFrom, type RunPosition } from './resume.js';
import { openRunLogger, silentLogger, type RunLogger } from './run_logger.js';
import type { TrainOptions } from './trainer.js';

/** Everything one rank's run holds: what it was set up with, and where it stands. */
export interface Run {
  config: TrainConfig;
  ring: Ring;
  options: TrainOptions;
  /** Rank 0's lines (a no-op elsewhere is the caller's choice: it checks the rank). */
  log: (line: string) => void;
  /** Micro-batches a step sums, and the images of each on this rank. */
  accumulate: number;
  micro: number;
  stepsPerEpoch: number;
  loader: DataLoader;
  valLoader: EvalBatches;
  lr: Schedule;
  /** THOR's damping by step; undefined with SGD. */
  damping: Schedule | undefined;
  model: Model;
  params: Map<string, tf.Variable>;
  /** The parameters' names in state order, and by their tfjs variable's name. */
  names: string[];
  byVariable: Map<string, string>;
  opt: MomentumSGD;
  thor: Thor | undefined;
  /** The buffer each step's gradients are all-reduced in, kept for the next step. */
  reduceBuffer?: Float32Array;
  progress: Progress;
  /** Seconds of work after this run, when a study's command launched it (for its whole ETA). */
  afterSeconds: number | undefined;
  checkpoint: string;
  metricsFile: string;
  /** Rank 0's steps.csv, metrics.csv and TensorBoard events; silent elsewhere. */
  logger: RunLogger;
  pos: RunPosition;
  /** The val split is scored after these steps of an epoch too (`evalsPerEpoch`), and at its end. */
  evalsPerEpoch: number;
  evalSteps: Set<number>;
  clock: RunClock;
  /** Non-finite steps since the last finite one. */
  nonFiniteInARow: number;
}

/** Training time as this process measures it, evaluation left out. */
export interface RunClock {
  /** Since when (performance.now()) `pos.trainSeconds` has not counted, and the steps since. */
  segmentStart: number;
  segmentSteps: number;
  /** How long the last evaluation took, for the ETA. */
  lastEvalSeconds: number;
  /** Where the last evaluation left off, for the img/s of the stretch since. */
  sinceStep: number;
  sinceSeconds: number;
}

/**
 * One rank's run, ready for its first step: the datasets and loaders of its shard, the model,
 * momentum SGD and THOR (registered on the model), the position of a checkpoint it resumes
 * from (every rank then holds rank 0's state), and, on rank 0, config.json, the metrics so far and
 * its logs (steps.csv, metrics.csv, TensorBoard's events).
 */
export async function setUpRun(
  config: TrainConfig,
  ring: Ring,
  options: TrainOptions,
): Promise<Run> {
  const { rank, worldSize } = ring;
  const log = options.log ?? console.log;
  const accumulate = config.accumulate ?? 1;
  const micro = config.batchSize / worldSize / accumulate;
  if (!Number.isInteger(micro)) {
    throw new ConfigError(
      `config: field 'batchSize' (${config.batchSize}) must divide by the ${worldSize} workers × ` +
        `${accumulate} accumulated micro-batches`,
    );
  }
  const trainSet = await openImageNet(config.data, { split: 'train' });
  const valSet = await openImageNet(config.data, { split: 'val' });
  checkClasses(config, trainSet, 'train');
  checkClasses(config, valSet, 'val');
  const transforms = buildTransforms(config, await commonImageSize(trainSet));
  const loader = buildLoader(config, trainSet, micro, transforms.train, ring, true);
  // The val pass is the same every epoch: kept in memory after the first one when it is small.
  const valLoader = new EvalBatches(
    buildLoader(config, valSet, micro, transforms.eval, ring, false),
  );
  const stepsPerEpoch = Math.floor(loader.numBatches / accumulate);
  if (stepsPerEpoch < 1) {
    throw new Error(
      `${config.data}: expected at least one batch of ${config.batchSize} training images, found ${trainSet.files.length} images`,
    );
  }
  const { lr, damping } = buildSchedules(config, stepsPerEpoch);

  const model = buildModel(config);
  const params = namedParameters(model);
  const opt = new MomentumSGD(params, {
    lr,
    momentum: config.momentum,
    nesterov: config.nesterov ?? false,
    weightDecay: config.weightDecay,
  });
  const thor = config.optimizer === 'thor' ? buildThor(config, damping) : undefined;
  if (thor !== undefined) {
    const { preconditioned, passThrough } = thor.register(model);
    if (rank === 0) {
      const layers = listed(
        preconditioned.map((l) => l.name),
        'layer',
      );
      log(
        `THOR preconditions ${layers}; momentum SGD alone trains ${listed(passThrough, 'parameter')}`,
      );
    }
  }
  const progress =
    options.progress ??
    (rank === 0
      ? new Progress(Progress.modeFor(process.stderr), (t) => process.stderr.write(t))
      : new Progress('none', () => undefined));

  const checkpoint = join(config.out, 'last.ckpt');
  const resumed = await startFrom(
    options.resume === false ? undefined : checkpoint,
    model,
    opt,
    thor,
    ring,
    config.init,
    log,
  );
  const pos: RunPosition = resumed ?? {
    step: 0,
    epoch: 0,
    stepInEpoch: 0,
    lossSum: 0,
    top1Sum: 0,
    trainSeconds: 0,
    evalSeconds: 0,
    refreshes: 0,
    history: [],
  };
  const metricsFile = join(config.out, 'metrics.jsonl');
  if (rank === 0) {
    await mkdir(config.out, { recursive: true });
    await writeFile(
      join(config.out, 'config.json'),
      JSON.stringify({ ...config, workers: worldSize }, null, 2),
    );
    // The metrics of the epochs the checkpoint holds; anything written after it is gone.
    await writeFile(metricsFile, pos.history.map((m) => `${JSON.stringify(m)}\n`).join(''));
    if (resumed) {
      log(
        `resuming from ${checkpoint}: epoch ${pos.epoch + 1}, step ${pos.stepInEpoch}/${stepsPerEpoch} of it (${pos.step} in all)`,
      );
    }
  }
  const logger = rank === 0 ? openRunLogger(config.out, config.tensorboard, pos) : silentLogger;
  if (logger.eventFile !== undefined) {
    log(`TensorBoard events: ${logger.eventFile} (tensorboard --logdir ${config.tensorboard})`);
  }

  const evalsPerEpoch = config.evalsPerEpoch ?? 1;
  return {
    config,
    ring,
    options,
    log,
    accumulate,
    micro,
    stepsPerEpoch,
    loader,
    valLoader,
    lr,
    damping: thor === undefined ? undefined : damping,
    model,
    params,
    names: [...params.keys()],
    byVariable: new Map([...params].map(([name, v]) => [v.name, name])),
    opt,
    thor,
    progress,
    afterSeconds: Progress.afterFrom(),
    checkpoint,
    metricsFile,
    logger,
    pos,
    evalsPerEpoch,
    evalSteps: new Set(
      Array.from({ length: evalsPerEpoch - 1 }, (_, j) =>
        Math.round(((j + 1) * stepsPerEpoch) / evalsPerEpoch),
      ),
    ),
    clock: {
      segmentStart: performance.now(),
      segmentSteps: 0,
      lastEvalSeconds: 0,
      sinceStep: pos.step,
      sinceSeconds: pos.trainSeconds,
    },
    nonFiniteInARow: 0,
  };
}

/** Frees the run's model, optimizer state and THOR's inverses, and closes its logs. */
export function disposeRun(run: Run): void {
  run.logger.close();
  run.thor?.dispose();
  run.opt.dispose();
  run.model.dispose();
}

/** THOR as the config's `thor` section describes it, with the run's damping schedule. */
function buildThor(config: TrainConfig, damping: Schedule): Thor {
  const t = config.thor;
  return new Thor({
    damping,
    blockSize: t.blockSize,
    refresh: { every: t.frequency },
    ...(t.klClip === undefined ? {} : { klClip: t.klClip }),
    ...(t.factorDecay === undefined ? {} : { factorDecay: t.factorDecay }),
    ...(t.factorEvery === undefined ? {} : { factorEvery: t.factorEvery }),
  });
}

/** 'n names (a, b, c, …, z)': a count and the names, elided in the middle past eight. */
function listed(names: string[], noun: string): string {
  if (names.length === 0) return `no ${noun}s`;
  const shown = names.length <= 8 ? names : [...names.slice(0, 4), '…', ...names.slice(-2)];
  return `${names.length} ${noun}${names.length === 1 ? '' : 's'} (${shown.join(', ')})`;
}
