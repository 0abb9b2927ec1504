import { writeFile } from 'node:fs/promises';

import { evaluate } from './evaluate.js';
import { averageBuffers, saveRun } from './resume.js';
import type { Run } from './run.js';
import { trainStep } from './step.js';
import type { EpochMetrics } from './trainer.js';

/**
 * The rest of the epoch `run.pos` is in (a resumed one goes on with the next batch it would have
 * trained on): its steps, the evaluations within it (`evalsPerEpoch`) and at its end, and its
 * checkpoints (every `checkpointEvery` steps and at its end). Returns false when a rank asked to
 * stop: the step under way was finished and checkpointed.
 */
export async function trainEpoch(run: Run): Promise<boolean> {
  const { config, pos } = run;
  const epoch = run.loader.epoch(pos.epoch, pos.stepInEpoch * run.accumulate);
  const batches = epoch[Symbol.asyncIterator]();
  while (pos.stepInEpoch < run.stepsPerEpoch) {
    const { stopRequested } = await trainStep(run, batches);
    // An evaluation due after this step comes before any checkpoint of it, so that a run resumed
    // from that checkpoint has it, and goes on as one that never stopped.
    if (pos.stepInEpoch < run.stepsPerEpoch && run.evalSteps.has(pos.stepInEpoch)) await score(run);
    if (stopRequested) {
      await batches.return?.(undefined);
      await checkpointNow(run);
      run.progress.finishLine();
      if (run.ring.rank === 0) {
        run.log(
          `stopped after step ${pos.step}; ${run.checkpoint} holds it, and the same command resumes it`,
        );
      }
      return false;
    }
    if (config.checkpointEvery > 0 && pos.step % config.checkpointEvery === 0) {
      await checkpointNow(run);
    }
  }
  await batches.return?.(undefined);
  await score(run);
  pos.epoch += 1;
  pos.stepInEpoch = 0;
  pos.lossSum = 0;
  pos.top1Sum = 0;
  pos.skippedInEpoch = 0;
  run.logger.flush();
  await saveRun(run.checkpoint, run.model, run.opt, run.thor, pos, run.ring);
  return true;
}

/** last.ckpt now, with the training time up to now in it (and the logs up to it written). */
async function checkpointNow(run: Run): Promise<void> {
  const now = performance.now();
  run.pos.trainSeconds += (now - run.clock.segmentStart) / 1e3;
  run.clock.segmentStart = now;
  run.logger.flush();
  await saveRun(run.checkpoint, run.model, run.opt, run.thor, run.pos, run.ring);
}

/**
 * Scores the val split now (batch norm's statistics averaged over the ranks first): a line in
 * metrics.jsonl, metrics.csv (and TensorBoard's events) and the log, the epoch fractional when
 * within one. Evaluation time is not training time.
 */
async function score(run: Run): Promise<void> {
  const { config, pos, clock } = run;
  const trainSeconds = pos.trainSeconds + (performance.now() - clock.segmentStart) / 1e3;
  const evalStart = performance.now();
  await averageBuffers(run.model, run.ring);
  const { top1, top5 } = await evaluate(run.model, run.valLoader, run.ring);
  clock.lastEvalSeconds = (performance.now() - evalStart) / 1e3;
  const steps = Math.max(pos.stepInEpoch - (pos.skippedInEpoch ?? 0), 1);
  const m: EpochMetrics = {
    optimizer: config.optimizer,
    epoch: pos.epoch + pos.stepInEpoch / run.stepsPerEpoch,
    step: pos.step,
    trainLoss: pos.lossSum / steps,
    trainTop1: (pos.top1Sum ?? 0) / steps,
    top1,
    top5,
    trainSeconds,
    wallSeconds: trainSeconds + pos.evalSeconds + clock.lastEvalSeconds,
    imagesPerSecond:
      ((pos.step - clock.sinceStep) * config.batchSize) / (trainSeconds - clock.sinceSeconds),
    lr: typeof run.lr === 'number' ? run.lr : run.lr(Math.max(pos.step - 1, 0)),
    refreshes: pos.refreshes,
  };
  pos.history.push(m);
  pos.evalSeconds += clock.lastEvalSeconds;
  pos.trainSeconds = trainSeconds;
  clock.segmentStart = performance.now();
  clock.segmentSteps = 0;
  clock.sinceStep = pos.step;
  clock.sinceSeconds = trainSeconds;
  run.progress.finishLine();
  if (run.ring.rank === 0) {
    await writeFile(run.metricsFile, `${JSON.stringify(m)}\n`, { flag: 'a' });
    run.logger.evaluation(m);
    const epoch = Number.isInteger(m.epoch) ? String(m.epoch) : m.epoch.toFixed(2);
    run.log(
      `${config.optimizer} epoch ${epoch}/${config.epochs}: loss ${m.trainLoss.toFixed(4)}, ` +
        `train top-1 ${(m.trainTop1 * 100).toFixed(2)}%, top-1 ${(top1 * 100).toFixed(2)}%, ` +
        `top-5 ${(top5 * 100).toFixed(2)}%, ${m.imagesPerSecond.toFixed(0)} img/s, ` +
        `${trainSeconds.toFixed(0)} s trained`,
    );
  }
}
