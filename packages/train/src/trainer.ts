import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import { openImageNet, type Batch } from '@thor-ts/data';
import type { Ring } from '@thor-ts/distributed';
import { CurvatureTaps, namedParameters, saveWeights, type Model } from '@thor-ts/model';
import {
  flatten,
  MomentumSGD,
  refreshThor,
  softmaxCrossEntropy,
  Thor,
  unflatten,
  valueAt,
  type ThorReport,
} from '@thor-ts/optim';

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
import { evaluate } from './evaluate.js';
import { Progress } from './progress.js';
import { allFinite, BufferSnapshot, finiteBuffers } from './finite_guard.js';
import { averageBuffers, refuseNonFinite, saveRun, startFrom, type RunPosition } from './resume.js';

/** Non-finite steps in a row (each skipped) after which a run stops with an error. */
const MAX_NON_FINITE_STEPS = 5;

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
 * metrics.jsonl, last.ckpt (every `checkpointEvery` steps and at each epoch's end) and the final
 * weights under `config.out`; a run finds its last.ckpt there and continues exactly where it was.
 */
export async function train(
  config: TrainConfig,
  ring: Ring,
  options: TrainOptions = {},
): Promise<TrainResult> {
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
  const names = [...params.keys()];
  const byVariable = new Map([...params].map(([name, v]) => [v.name, name]));
  const variables = [...params.values()];
  const opt = new MomentumSGD(params, {
    lr,
    momentum: config.momentum,
    nesterov: config.nesterov ?? false,
    weightDecay: config.weightDecay,
  });
  const thor =
    config.optimizer === 'thor'
      ? new Thor({
          damping,
          blockSize: config.thor.blockSize,
          refresh: { every: config.thor.frequency },
          ...(config.thor.klClip === undefined ? {} : { klClip: config.thor.klClip }),
          ...(config.thor.factorDecay === undefined
            ? {}
            : { factorDecay: config.thor.factorDecay }),
          ...(config.thor.factorEvery === undefined
            ? {}
            : { factorEvery: config.thor.factorEvery }),
        })
      : undefined;
  if (thor !== undefined) {
    const { preconditioned, passThrough } = thor.register(model);
    if (rank === 0) {
      log(
        `THOR preconditions ${listed(
          preconditioned.map((l) => l.name),
          'layer',
        )}; ` + `momentum SGD alone trains ${listed(passThrough, 'parameter')}`,
      );
    }
  }
  const progress =
    options.progress ??
    (rank === 0
      ? new Progress(Progress.modeFor(process.stderr), (t) => process.stderr.write(t))
      : new Progress('none', () => undefined));

  // The work after this run, when a study's command launched it (its whole ETA on the bar).
  const afterSeconds = Progress.afterFrom();
  const checkpoint = join(config.out, 'last.ckpt');
  const resumed = await startFrom(
    options.resume === false ? undefined : checkpoint,
    model,
    opt,
    thor,
    ring,
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

  // Non-finite steps since the last finite one: the run stops at MAX_NON_FINITE_STEPS.
  let nonFiniteInARow = 0;
  // Seconds trained in this process so far, for img/s and the ETA.
  let segmentStart = performance.now();
  let segmentSteps = 0;
  let lastEvalSeconds = 0;
  const trainedSeconds = () => pos.trainSeconds + (performance.now() - segmentStart) / 1e3;
  const save = async () => {
    const now = performance.now();
    pos.trainSeconds += (now - segmentStart) / 1e3;
    segmentStart = now;
    await saveRun(checkpoint, model, opt, thor, pos, ring);
  };

  // The steps of an epoch after which the val split is scored besides its end (evalsPerEpoch).
  const evals = config.evalsPerEpoch ?? 1;
  const evalSteps = new Set(
    Array.from({ length: evals - 1 }, (_, j) => Math.round(((j + 1) * stepsPerEpoch) / evals)),
  );
  // Where the last evaluation left off, for the img/s of the stretch since.
  let sinceStep = pos.step;
  let sinceSeconds = pos.trainSeconds;

  /**
   * Scores the val split now: a line in metrics.jsonl and the log, the epoch fractional when
   * within one. Evaluation time is not training time.
   */
  const score = async (): Promise<void> => {
    const trainSeconds = trainedSeconds();
    const evalStart = performance.now();
    await averageBuffers(model, ring);
    const { top1, top5 } = await evaluate(model, valLoader, ring);
    lastEvalSeconds = (performance.now() - evalStart) / 1e3;
    const steps = Math.max(pos.stepInEpoch - (pos.skippedInEpoch ?? 0), 1);
    const m: EpochMetrics = {
      optimizer: config.optimizer,
      epoch: pos.epoch + pos.stepInEpoch / stepsPerEpoch,
      step: pos.step,
      trainLoss: pos.lossSum / steps,
      trainTop1: (pos.top1Sum ?? 0) / steps,
      top1,
      top5,
      trainSeconds,
      wallSeconds: trainSeconds + pos.evalSeconds + lastEvalSeconds,
      imagesPerSecond: ((pos.step - sinceStep) * config.batchSize) / (trainSeconds - sinceSeconds),
      lr: typeof lr === 'number' ? lr : lr(Math.max(pos.step - 1, 0)),
      refreshes: pos.refreshes,
    };
    pos.history.push(m);
    pos.evalSeconds += lastEvalSeconds;
    pos.trainSeconds = trainSeconds;
    segmentStart = performance.now();
    segmentSteps = 0;
    sinceStep = pos.step;
    sinceSeconds = trainSeconds;
    progress.finishLine();
    if (rank === 0) {
      await writeFile(metricsFile, `${JSON.stringify(m)}\n`, { flag: 'a' });
      const epoch = Number.isInteger(m.epoch) ? String(m.epoch) : m.epoch.toFixed(2);
      log(
        `${config.optimizer} epoch ${epoch}/${config.epochs}: loss ${m.trainLoss.toFixed(4)}, ` +
          `train top-1 ${(m.trainTop1 * 100).toFixed(2)}%, top-1 ${(top1 * 100).toFixed(2)}%, ` +
          `top-5 ${(top5 * 100).toFixed(2)}%, ${m.imagesPerSecond.toFixed(0)} img/s, ` +
          `${trainSeconds.toFixed(0)} s trained`,
      );
    }
  };

  while (pos.epoch < config.epochs) {
    // A resumed epoch continues with the next batch it would have trained on.
    const batches = loader.epoch(pos.epoch, pos.stepInEpoch * accumulate)[Symbol.asyncIterator]();
    while (pos.stepInEpoch < stepsPerEpoch) {
      const taps = thor?.wantsTaps(pos.step) ? new CurvatureTaps() : undefined;
      // Batch norm's statistics as they were, in case this step turns out non-finite.
      const before = new BufferSnapshot(model);
      let sum: Map<string, tf.Tensor> | undefined;
      let lossSum = 0;
      let correct = 0;
      const used: Batch[] = [];
      for (let m = 0; m < accumulate; m++) {
        const next = await batches.next();
        if (next.done === true) throw new Error('train: the loader ended an epoch early');
        used.push(next.value);
        // Curvature from the step's first micro-batch, as the reference takes it from one batch.
        const { loss, hits, grads } = gradients(
          model,
          next.value,
          config,
          byVariable,
          variables,
          m === 0 ? taps : undefined,
        );
        lossSum += loss;
        correct += hits;
        sum = sum === undefined ? grads : addInto(sum, grads);
      }
      const local = accumulate > 1 ? scale(sum!, 1 / accumulate) : sum!;
      const stopHere = options.signal?.aborted === true ? 1 : 0;
      // Gradients, the loss, the share of images classified right, the buffers' check and the stop
      // flag in one all-reduce (mean over ranks).
      const reduced = await ring.allReduce(
        flatten(names, local, [
          lossSum / accumulate,
          correct / (micro * accumulate),
          // Batch norm's running statistics overflow before the loss does: NaN here if they did.
          finiteBuffers(model) ? 0 : NaN,
          stopHere,
        ]),
        { op: 'mean' },
      );
      tf.dispose([...local.values()]);
      const stopRequested = (reduced[reduced.length - 1] as number) > 0;
      // Every rank holds the same reduced bytes, so every rank makes the same choice here.
      if (allFinite(reduced)) {
        nonFiniteInARow = 0;
        before.dispose();
        const { tensors: mean, extra } = unflatten(names, params, reduced);
        pos.lossSum += extra[0] as number;
        pos.top1Sum = (pos.top1Sum ?? 0) + (extra[1] as number);
        if (taps !== undefined && thor !== undefined) {
          const report = await refreshThor(thor, taps, ring, pos.step);
          pos.refreshes += 1;
          if (rank === 0) logThorReport(report, log);
        }
        const update = thor ? thor.precondition(mean, undefined, valueAt(lr, opt.stepCount)) : mean;
        opt.step(update);
        tf.dispose([...mean.values(), ...update.values()]);
      } else {
        // Nothing of this step is applied: no update, no refresh, batch norm's statistics put back.
        before.restore();
        nonFiniteInARow += 1;
        pos.skippedInEpoch = (pos.skippedInEpoch ?? 0) + 1;
        progress.finishLine();
        if (rank === 0) {
          log(
            `step ${pos.step + 1}: the loss, the gradients or batch norm's statistics are not finite (NaN or infinite); the step is skipped, the model is unchanged (${nonFiniteInARow} in a row)`,
          );
        }
        if (nonFiniteInARow >= MAX_NON_FINITE_STEPS) {
          taps?.dispose();
          throw new Error(
            `training diverged: the loss, the gradients or batch norm's statistics were not finite in ${nonFiniteInARow} steps in a row (steps ${pos.step + 2 - nonFiniteInARow}–${pos.step + 1}); none of them was applied, and no checkpoint was written from them (a lower learning rate may help)`,
          );
        }
      }
      taps?.dispose();
      // Nothing reads the step's images any more (the curvature taps, which may share the first
      // layer's input with them on the cpu backend, are gone): the loader may fill their buffers
      // with later batches.
      for (const b of used) b.release();
      pos.step += 1;
      pos.stepInEpoch += 1;
      segmentSteps += 1;
      const secondsPerStep = (performance.now() - segmentStart) / 1e3 / segmentSteps;
      progress.update({
        optimizer: config.optimizer,
        epoch: pos.epoch + 1,
        epochs: config.epochs,
        stepInEpoch: pos.stepInEpoch,
        stepsPerEpoch,
        loss: pos.lossSum / Math.max(pos.stepInEpoch - (pos.skippedInEpoch ?? 0), 1),
        imagesPerSecond: config.batchSize / secondsPerStep,
        etaSeconds:
          (config.epochs * stepsPerEpoch - pos.step) * secondsPerStep +
          (config.epochs - pos.epoch) * evals * lastEvalSeconds,
        ...(afterSeconds === undefined ? {} : { afterSeconds }),
      });
      options.onStep?.(pos.step);
      if (stopRequested) {
        await batches.return(undefined);
        await save();
        progress.finishLine();
        if (rank === 0) {
          log(
            `stopped after step ${pos.step}; ${checkpoint} holds it, and the same command resumes it`,
          );
        }
        return finish(false);
      }
      if (config.checkpointEvery > 0 && pos.step % config.checkpointEvery === 0) await save();
      if (pos.stepInEpoch < stepsPerEpoch && evalSteps.has(pos.stepInEpoch)) await score();
    }
    await batches.return(undefined);
    await score();
    pos.epoch += 1;
    pos.stepInEpoch = 0;
    pos.lossSum = 0;
    pos.top1Sum = 0;
    pos.skippedInEpoch = 0;
    await saveRun(checkpoint, model, opt, thor, pos, ring);
  }
  if (rank === 0) {
    const weights = join(config.out, 'weights.safetensors');
    refuseNonFinite(model, weights);
    await saveWeights(model, weights);
  }
  return finish(true);

  function finish(done: boolean): TrainResult {
    thor?.dispose();
    opt.dispose();
    model.dispose();
    return { history: pos.history, step: pos.step, stopped: !done };
  }
}

/**
 * The loss, the images whose top logit is their label, and the parameter gradients of one
 * micro-batch, recording curvature into `taps`.
 */
function gradients(
  model: Model,
  batch: Batch,
  config: TrainConfig,
  byVariable: Map<string, string>,
  variables: tf.Variable[],
  taps: CurvatureTaps | undefined,
): { loss: number; hits: number; grads: Map<string, tf.Tensor> } {
  const x = tf.tensor4d(batch.images, batch.shape as [number, number, number, number]);
  const y = tf.tensor1d(batch.labels, 'int32');
  let right: tf.Tensor | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const logits = model.forward(x, { training: true, taps });
    // Counted from the same logits the loss uses; argMax has no gradient and adds none.
    right = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'int32')));
    return softmaxCrossEntropy(logits, y, config.labelSmoothing);
  }, variables);
  const loss = value.dataSync()[0] as number;
  const hits = right!.dataSync()[0] as number;
  tf.dispose([x, y, value, right!]);
  return {
    loss,
    hits,
    grads: new Map(Object.entries(grads).map(([v, g]) => [byVariable.get(v) as string, g])),
  };
}

/** `sum + more`, disposing both maps' tensors. */
function addInto(
  sum: Map<string, tf.Tensor>,
  more: Map<string, tf.Tensor>,
): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [k, a] of sum) {
    const b = more.get(k);
    out.set(k, b === undefined ? a : tf.add(a, b));
    if (b !== undefined) tf.dispose([a, b]);
  }
  return out;
}

function scale(grads: Map<string, tf.Tensor>, s: number): Map<string, tf.Tensor> {
  const out = new Map([...grads].map(([k, g]) => [k, tf.mul(g, s)]));
  tf.dispose([...grads.values()]);
  return out;
}

/** 'n names (a, b, c, …, z)': a count and the names, elided in the middle past eight. */
function listed(names: string[], noun: string): string {
  if (names.length === 0) return `no ${noun}s`;
  const shown = names.length <= 8 ? names : [...names.slice(0, 4), '…', ...names.slice(-2)];
  return `${names.length} ${noun}${names.length === 1 ? '' : 's'} (${shown.join(', ')})`;
}

/** What a THOR refresh had to work around (damping raised, factors not finite, layers stopped). */
function logThorReport(report: ThorReport, log: (line: string) => void): void {
  const parts = [
    report.retried.length > 0
      ? `more damping for: ${report.retried.map((r) => `${r.layer} (${r.factor}, block ${r.block}, damping ${r.damping.toPrecision(3)})`).join(', ')}`
      : '',
    report.nonFinite.length > 0
      ? `non-finite, left as they were: ${report.nonFinite.join(', ')}`
      : '',
    report.stopped.length > 0 ? `stopped for good: ${report.stopped.join(', ')}` : '',
  ].filter((p) => p !== '');
  if (parts.length > 0) log(`THOR refresh at step ${report.step + 1}: ${parts.join('; ')}`);
}
