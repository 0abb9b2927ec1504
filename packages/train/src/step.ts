import * as tf from '@tensorflow/tfjs-core';
import type { Batch } from '@thor-ts/data';
import { CurvatureTaps } from '@thor-ts/model';
import {
  flatten,
  meanFactors,
  refreshThor,
  softmaxCrossEntropy,
  unflatten,
  valueAt,
  type FactorPair,
  type ThorReport,
} from '@thor-ts/optim';

import { allFinite, BufferSnapshot, finiteBuffers } from './finite_guard.js';
import type { Run } from './run.js';

/** Non-finite steps in a row (each skipped) after which a run stops with an error. */
export const MAX_NON_FINITE_STEPS = 5;

/**
 * One optimizer step on every rank: the loss and gradients of `accumulate` micro-batches of this
 * rank's shard (and on THOR's refresh steps the curvature factors of each, averaged), one
 * all-reduce (mean) of the gradients with the loss, the share classified right, a check of batch
 * norm's statistics and the stop flag; THOR's refresh on its steps (factors averaged, inversions
 * shared) and its preconditioning; momentum SGD's update. A step whose
 * reduced values are not all finite is skipped whole (no update, no refresh, batch norm's
 * statistics put back); MAX_NON_FINITE_STEPS in a row end the run with an error. Rank 0's
 * logger gets the step's loss, learning rate, damping, img/s and refresh time. Returns whether
 * any rank asked to stop.
 */
export async function trainStep(
  run: Run,
  batches: AsyncIterator<Batch>,
): Promise<{ stopRequested: boolean }> {
  const { ring, model, thor, opt, pos, accumulate } = run;
  const started = performance.now();
  const refresh = thor?.wantsTaps(pos.step) === true;
  // Batch norm's statistics as they were, in case this step turns out non-finite.
  const before = new BufferSnapshot(model);
  let sum: Map<string, tf.Tensor> | undefined;
  let lossSum = 0;
  let correct = 0;
  const used: Batch[] = [];
  // THOR's factors from every micro-batch, averaged: k micro-batches on this rank give the
  // factors k ranks of one micro-batch each would.
  const factors: Map<string, FactorPair>[] = [];
  // Where this rank's step goes (ms): waiting for batches, the passes, the all-reduce, the update.
  const time = { data: 0, compute: 0, allReduce: 0, update: 0 };
  let mark = performance.now();
  const lap = (phase: keyof typeof time): void => {
    const now = performance.now();
    time[phase] += now - mark;
    mark = now;
  };
  for (let m = 0; m < accumulate; m++) {
    const next = await batches.next();
    if (next.done === true) throw new Error('train: the loader ended an epoch early');
    lap('data');
    used.push(next.value);
    const taps = refresh ? new CurvatureTaps() : undefined;
    const { loss, hits, grads } = gradients(run, next.value, taps);
    if (taps !== undefined) {
      factors.push(thor!.computeFactors(taps.all()));
      taps.dispose();
    }
    lossSum += loss;
    correct += hits;
    sum = sum === undefined ? grads : addInto(sum, grads);
    lap('compute');
  }
  const local = accumulate > 1 ? scale(sum!, 1 / accumulate) : sum!;
  lap('compute');
  const stopHere = run.options.signal?.aborted === true ? 1 : 0;
  const reduced = await ring.allReduce(
    flatten(
      run.names,
      local,
      [
        lossSum / accumulate,
        correct / (run.micro * accumulate),
        // Batch norm's running statistics overflow before the loss does: NaN here if they did.
        finiteBuffers(model) ? 0 : NaN,
        stopHere,
      ],
      // The buffer the last step reduced in (the tensors unflattened from it own their values).
      run.reduceBuffer,
    ),
    { op: 'mean' },
  );
  run.reduceBuffer = reduced;
  lap('allReduce');
  tf.dispose([...local.values()]);
  const stopRequested = (reduced[reduced.length - 1] as number) > 0;
  // The step's mean loss over the ranks (the first of the four values after the gradients), the
  // learning rate it applies and THOR's damping, for the logs.
  const loss = reduced[reduced.length - 4] as number;
  const lr = valueAt(run.lr, opt.stepCount);
  const damping = run.damping === undefined ? undefined : valueAt(run.damping, pos.step);
  let refreshMs: number | undefined;
  // Every rank holds the same reduced bytes, so every rank makes the same choice here.
  if (allFinite(reduced)) {
    run.nonFiniteInARow = 0;
    before.dispose();
    const { tensors: mean, extra } = unflatten(run.names, run.params, reduced);
    pos.lossSum += extra[0] as number;
    pos.top1Sum = (pos.top1Sum ?? 0) + (extra[1] as number);
    if (factors.length > 0 && thor !== undefined) {
      const refreshStart = performance.now();
      const report = await refreshThor(thor, meanFactors(factors), ring, pos.step);
      refreshMs = performance.now() - refreshStart;
      pos.refreshes += 1;
      if (ring.rank === 0) logThorReport(report, run.log);
    }
    const update = thor ? thor.precondition(mean, undefined, lr) : mean;
    opt.step(update);
    tf.dispose([...mean.values(), ...update.values()]);
  } else {
    tf.dispose(factors.flatMap((f) => [...f.values()].flatMap((p) => [p.a, p.g])));
    before.restore();
    run.nonFiniteInARow += 1;
    pos.skippedInEpoch = (pos.skippedInEpoch ?? 0) + 1;
    run.progress.finishLine();
    if (ring.rank === 0) {
      run.log(
        `step ${pos.step + 1}: the loss, the gradients or batch norm's statistics are not finite (NaN or infinite); the step is skipped, the model is unchanged (${run.nonFiniteInARow} in a row)`,
      );
    }
    if (run.nonFiniteInARow >= MAX_NON_FINITE_STEPS) {
      throw new Error(
        `training diverged: the loss, the gradients or batch norm's statistics were not finite in ${run.nonFiniteInARow} steps in a row (steps ${pos.step + 2 - run.nonFiniteInARow}–${pos.step + 1}); none of them was applied, and no checkpoint was written from them (a lower learning rate may help)`,
      );
    }
  }
  // Nothing reads the step's images any more (the curvature taps, which may share the first
  // layer's input with them on the cpu backend, are gone): the loader may fill their buffers
  // with later batches.
  for (const b of used) b.release();
  lap('update');
  pos.step += 1;
  pos.stepInEpoch += 1;
  run.logger.step({
    step: pos.step,
    epoch: pos.epoch + 1,
    loss,
    lr,
    damping,
    imagesPerSecond: run.config.batchSize / ((performance.now() - started) / 1e3),
    refreshMs,
    dataMs: time.data,
    computeMs: time.compute,
    allReduceMs: time.allReduce,
    updateMs: time.update,
  });
  showProgress(run);
  run.options.onStep?.(pos.step);
  return { stopRequested };
}

/** Rank 0's bar or line: the epoch's loss so far, img/s and the ETA of the run (and after it). */
function showProgress(run: Run): void {
  const { config, pos, clock, stepsPerEpoch } = run;
  clock.segmentSteps += 1;
  const secondsPerStep = (performance.now() - clock.segmentStart) / 1e3 / clock.segmentSteps;
  run.progress.update({
    optimizer: config.optimizer,
    epoch: pos.epoch + 1,
    epochs: config.epochs,
    stepInEpoch: pos.stepInEpoch,
    stepsPerEpoch,
    loss: pos.lossSum / Math.max(pos.stepInEpoch - (pos.skippedInEpoch ?? 0), 1),
    imagesPerSecond: config.batchSize / secondsPerStep,
    etaSeconds:
      (config.epochs * stepsPerEpoch - pos.step) * secondsPerStep +
      (config.epochs - pos.epoch) * run.evalsPerEpoch * clock.lastEvalSeconds,
    ...(run.afterSeconds === undefined ? {} : { afterSeconds: run.afterSeconds }),
  });
}

/**
 * The loss, the images whose top logit is their label, and the parameter gradients (by name) of
 * one micro-batch, recording curvature into `taps`.
 */
function gradients(
  run: Run,
  batch: Batch,
  taps: CurvatureTaps | undefined,
): { loss: number; hits: number; grads: Map<string, tf.Tensor> } {
  const x = tf.tensor4d(batch.images, batch.shape as [number, number, number, number]);
  const y = tf.tensor1d(batch.labels, 'int32');
  let right: tf.Tensor | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const logits = run.model.forward(x, { training: true, taps });
    // Counted from the same logits the loss uses; argMax has no gradient and adds none.
    right = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'int32')));
    return softmaxCrossEntropy(logits, y, run.config.labelSmoothing);
  }, [...run.params.values()]);
  const loss = value.dataSync()[0] as number;
  const hits = right!.dataSync()[0] as number;
  tf.dispose([x, y, value, right!]);
  return {
    loss,
    hits,
    grads: new Map(Object.entries(grads).map(([v, g]) => [run.byVariable.get(v) as string, g])),
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
