import { join } from 'node:path';

import { CsvLog } from './csv_log.js';
import { EventFileWriter } from './event_file.js';
import type { EpochMetrics } from './trainer.js';

/** What one optimizer step reports: rank 0's view, the loss averaged over the ranks. */
export interface StepScalars {
  /** Steps done, this one included: the x axis of every log (as metrics.jsonl's `step`). */
  step: number;
  /** The epoch the step is in, from 1. */
  epoch: number;
  /** The step's loss, the mean over the ranks (NaN or infinite on a step that was skipped). */
  loss: number;
  /** The learning rate the step used. */
  lr: number;
  /** THOR's damping at the step; absent with SGD. */
  damping?: number;
  imagesPerSecond: number;
  /** Milliseconds THOR's curvature refresh took, on the steps that had one. */
  refreshMs?: number;
  /**
   * Where rank 0's step went, in ms: waiting for its batches, the forward and backward passes
   * (with THOR's factors on refresh steps), the all-reduce (waiting for the other ranks
   * included), and the update (THOR's refresh and preconditioning, the optimizer, the checks).
   */
  dataMs?: number;
  computeMs?: number;
  allReduceMs?: number;
  updateMs?: number;
}

/** Where a run's steps and evaluations go besides metrics.jsonl. */
export interface RunLogger {
  step(s: StepScalars): void;
  evaluation(m: EpochMetrics): void;
  /** Writes anything held, e.g. before a checkpoint, so that the logs hold every step it does. */
  flush(): void;
  close(): void;
  /** The TensorBoard event file written, if any. */
  readonly eventFile?: string;
}

/** The logger of every rank but 0: it writes nothing. */
export const silentLogger: RunLogger = {
  step: () => undefined,
  evaluation: () => undefined,
  flush: () => undefined,
  close: () => undefined,
};

/** steps.csv's columns. */
export const STEP_COLUMNS = [
  'step',
  'epoch',
  'loss',
  'lr',
  'damping',
  'img_per_s',
  'refresh_ms',
  'data_ms',
  'compute_ms',
  'allreduce_ms',
  'update_ms',
] as const;

/** metrics.csv's columns: metrics.jsonl's fields, in its order. */
export const METRIC_COLUMNS = [
  'optimizer',
  'epoch',
  'step',
  'trainLoss',
  'trainTop1',
  'top1',
  'top5',
  'trainSeconds',
  'wallSeconds',
  'imagesPerSecond',
  'lr',
  'refreshes',
] as const satisfies readonly (keyof EpochMetrics)[];

/**
 * TensorBoard's tags for the fields of a metrics.jsonl line; any other number in it goes under
 * `metrics/<field>`, and `step` is the x axis.
 */
const METRIC_TAGS: Record<string, string> = {
  top1: 'val/top1',
  top5: 'val/top5',
  valLoss: 'val/loss',
  trainTop1: 'train/top1',
  trainLoss: 'train/loss_epoch',
};

/**
 * Rank 0's logger: `<out>/steps.csv` (a row per step), `<out>/metrics.csv` (a row per
 * evaluation, as metrics.jsonl), and with `tensorboard` a TensorBoard event file there with both.
 * A run resumed at `from.step` keeps the rows of the steps up to it and the evaluations its
 * checkpoint holds (`from.history`), as metrics.jsonl does, and its event file has TensorBoard
 * drop what earlier files logged after that step.
 */
export function openRunLogger(
  out: string,
  tensorboard: string | undefined,
  from: { step: number; history: readonly EpochMetrics[] },
): RunLogger {
  const stepsPath = join(out, 'steps.csv');
  const kept = CsvLog.kept(stepsPath, STEP_COLUMNS, ([step]) => Number(step) <= from.step);
  const steps = new CsvLog(stepsPath, STEP_COLUMNS, kept);
  const metrics = new CsvLog(join(out, 'metrics.csv'), METRIC_COLUMNS);
  for (const m of from.history) metrics.row(METRIC_COLUMNS.map((k) => m[k]));
  const events =
    tensorboard === undefined
      ? undefined
      : new EventFileWriter(tensorboard, from.step > 0 ? { purgeStep: from.step + 1 } : {});
  return {
    ...(events === undefined ? {} : { eventFile: events.path }),
    step(s) {
      steps.row([
        s.step,
        s.epoch,
        s.loss,
        s.lr,
        s.damping,
        s.imagesPerSecond,
        s.refreshMs,
        s.dataMs,
        s.computeMs,
        s.allReduceMs,
        s.updateMs,
      ]);
      events?.scalars(s.step, {
        'train/loss': s.loss,
        'train/lr': s.lr,
        'train/damping': s.damping,
        'train/img_per_s': s.imagesPerSecond,
        'thor/refresh_ms': s.refreshMs,
        'time/data_ms': s.dataMs,
        'time/compute_ms': s.computeMs,
        'time/allreduce_ms': s.allReduceMs,
        'time/update_ms': s.updateMs,
      });
    },
    evaluation(m) {
      metrics.row(METRIC_COLUMNS.map((k) => m[k]));
      if (events === undefined) return;
      const values: Record<string, number> = {};
      for (const [field, value] of Object.entries(m)) {
        if (typeof value === 'number' && field !== 'step') {
          values[METRIC_TAGS[field] ?? `metrics/${field}`] = value;
        }
      }
      events.scalars(m.step, values);
      events.flush();
    },
    flush: () => events?.flush(),
    close() {
      steps.close();
      metrics.close();
      events?.close();
    },
  };
}
