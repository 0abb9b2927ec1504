import { join } from 'node:path';

import type { Ring } from '@thor-ts/distributed';
import { saveWeights } from '@thor-ts/model';

import type { TrainConfig } from './config.js';
import { trainEpoch } from './epoch.js';
import type { Progress } from './progress.js';
import { refuseNonFinite } from './resume.js';
import { disposeRun, setUpRun } from './run.js';

/** One line of metrics.jsonl. */
export interface EpochMetrics {
  optimizer: 'sgd' | 'thor';
  /** Epochs trained: whole at an epoch's end, fractional for the evaluations within one. */
  epoch: number;
  step: number;
  /** The epoch's mean training loss so far. */
  trainLoss: number;
  /**
   * Top-1 on the epoch's training batches as they were trained on (augmented, in training mode,
   * before each step's update: PyTorch's ImageNet example's train Acc@1).
   */
  trainTop1: number;
  top1: number;
  top5: number;
  /** Seconds since training started, evaluation excluded. */
  trainSeconds: number;
  /** Seconds since training started, evaluation included. */
  wallSeconds: number;
  imagesPerSecond: number;
  lr: number;
  refreshes: number;
}

export interface TrainOptions {
  /** Rank 0's epoch lines and notices. Default console.log. */
  log?: (line: string) => void;
  /**
   * When aborted (e.g. on SIGINT/SIGTERM), every rank finishes the step under way, rank 0 writes
   * last.ckpt, and `train` returns with `stopped: true`.
   */
  signal?: AbortSignal;
  /** Continue from `<out>/last.ckpt` when there is one. Default true. */
  resume?: boolean;
  /**
   * Rank 0's progress display. Default: a bar on a terminal, a line every 30 s otherwise; with
   * THOR_TS_ETA_AFTER set (seconds of work after this run), also the whole command's ETA.
   */
  progress?: Progress;
  /** Called on every rank after each optimizer step. */
  onStep?: (step: number) => void;
}

export interface TrainResult {
  /** Every evaluated epoch, those of earlier (resumed) runs included. */
  history: EpochMetrics[];
  /** Optimizer steps done. */
  step: number;
  /** True when the signal stopped the run before its last epoch. */
  stopped: boolean;
}

/**
 * Trains on every rank of `ring`: each step computes the loss and gradients on this rank's shard
 * (summed over `accumulate` micro-batches), all-reduces them (mean), lets THOR precondition them
 * (its factors all-reduced and its inversions split over the ranks on refresh steps), and applies
 * momentum SGD. Evaluates top-1/top-5 on the val split after each epoch. Rank 0 writes
 * metrics.jsonl and metrics.csv (a row per evaluation), steps.csv (a row per step), last.ckpt
 * (every `checkpointEvery` steps and at each epoch's end) and the final weights under
 * `config.out`, and with `config.tensorboard` a TensorBoard event file of both; a run finds its
 * last.ckpt there and continues exactly where it was.
 */
export async function train(
  config: TrainConfig,
  ring: Ring,
  options: TrainOptions = {},
): Promise<TrainResult> {
  const run = await setUpRun(config, ring, options);
  try {
    while (run.pos.epoch < config.epochs) {
      if (!(await trainEpoch(run)))
        return { history: run.pos.history, step: run.pos.step, stopped: true };
    }
    if (ring.rank === 0) {
      const weights = join(config.out, 'weights.safetensors');
      refuseNonFinite(run.model, weights);
      await saveWeights(run.model, weights);
    }
    return { history: run.pos.history, step: run.pos.step, stopped: false };
  } finally {
    disposeRun(run);
  }
}
