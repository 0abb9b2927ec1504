import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import { DataLoader, DistributedSampler, openImageFolder, type Batch } from '@thor-ts/data';
import type { Ring } from '@thor-ts/distributed';
import { CurvatureTaps, saveCheckpoint, saveWeights, type ResNet } from '@thor-ts/model';
import { MomentumSGD, softmaxCrossEntropy, Thor, type FactorPair } from '@thor-ts/optim';

import { buildModel, buildSchedules, buildTransforms } from './build.js';
import type { TrainConfig } from './config.js';
import { flatten, unflatten } from './flat.js';

/** One line of metrics.jsonl. */
export interface EpochMetrics {
  optimizer: 'sgd' | 'thor';
  epoch: number;
  step: number;
  trainLoss: number;
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

/**
 * Trains on every rank of `ring`: each step computes the loss and gradients on this rank's shard,
 * all-reduces them (mean), lets THOR precondition them (its factors all-reduced on refresh steps),
 * and applies momentum SGD. Evaluates top-1/top-5 on the val split after each epoch. Rank 0 writes
 * metrics.jsonl, checkpoints and the final weights under `config.out`.
 */
export async function train(
  config: TrainConfig,
  ring: Ring,
  log: (line: string) => void = console.log,
): Promise<EpochMetrics[]> {
  const { rank, worldSize } = ring;
  if (config.batchSize % worldSize !== 0) {
    throw new Error(
      `config: field 'batchSize' (${config.batchSize}) must divide by the ${worldSize} workers`,
    );
  }
  const trainSet = await openImageFolder(join(config.data, 'train'));
  const valSet = await openImageFolder(join(config.data, 'val'));
  const transforms = buildTransforms(config);
  // Shards of the batch per rank; the val shards are not shuffled (padding repeats a few images).
  const loaderFor = (set: typeof trainSet, train: boolean) =>
    new DataLoader(set, {
      batchSize: config.batchSize / worldSize,
      transforms: train ? transforms.train : transforms.eval,
      sampler: new DistributedSampler(set.files.length, {
        numReplicas: worldSize,
        rank,
        seed: config.seed,
        shuffle: train,
        dropLast: train,
      }),
      seed: config.seed,
      dropLast: train,
      concurrency: 2,
      ...(config.normalization ? { normalization: config.normalization } : {}),
    });
  const loader = loaderFor(trainSet, true);
  const valLoader = loaderFor(valSet, false);
  const stepsPerEpoch = Math.floor(trainSet.files.length / config.batchSize);
  const { lr, damping } = buildSchedules(config, stepsPerEpoch);

  const model = buildModel(config);
  await broadcastState(model, ring);
  const params = new Map(
    [...model.parameters()].map(([name, e]) => [name, e.variable as tf.Variable]),
  );
  const names = [...params.keys()];
  const byVariable = new Map([...params].map(([name, v]) => [v.name, name]));
  const opt = new MomentumSGD(params, {
    lr,
    momentum: config.momentum,
    weightDecay: config.weightDecay,
  });
  const thor =
    config.optimizer === 'thor'
      ? new Thor({
          damping,
          blockSize: config.thor.blockSize,
          refresh: { every: config.thor.frequency },
        })
      : undefined;

  if (rank === 0) {
    await mkdir(config.out, { recursive: true });
    await writeFile(
      join(config.out, 'config.json'),
      JSON.stringify({ ...config, workers: worldSize }, null, 2),
    );
  }
  const metricsFile = join(config.out, 'metrics.jsonl');
  const history: EpochMetrics[] = [];
  const start = performance.now();
  let evalSeconds = 0;
  let step = 0;
  let refreshes = 0;
  for (let epoch = 0; epoch < config.epochs; epoch++) {
    let lossSum = 0;
    let batches = 0;
    const epochStart = performance.now();
    for await (const batch of loader.epoch(epoch)) {
      const taps = thor?.wantsTaps(step) ? new CurvatureTaps() : undefined;
      const x = tf.tensor4d(batch.images, batch.shape as [number, number, number, number]);
      const y = tf.tensor1d(batch.labels, 'int32');
      const { value, grads } = tf.variableGrads(() =>
        softmaxCrossEntropy(model.forward(x, { training: true, taps }), y, config.labelSmoothing),
      );
      const local = new Map(
        Object.entries(grads).map(([v, g]) => [byVariable.get(v) as string, g]),
      );
      // Gradients and the loss in one all-reduce (mean over ranks).
      const reduced = await ring.allReduce(flatten(names, local, [value.dataSync()[0] as number]), {
        op: 'mean',
      });
      const { tensors: mean, extra } = unflatten(names, params, reduced);
      tf.dispose([x, y, value, ...local.values()]);
      lossSum += extra[0] as number;
      batches += 1;
      if (taps !== undefined && thor !== undefined) {
        await refresh(thor, taps, ring, step);
        taps.dispose();
        refreshes += 1;
      }
      const update = thor ? thor.precondition(mean) : mean;
      opt.step(update);
      tf.dispose([...mean.values(), ...update.values()]);
      step += 1;
      if (rank === 0 && config.checkpointEvery > 0 && step % config.checkpointEvery === 0) {
        await saveCheckpoint(join(config.out, 'last.ckpt'), model, {
          step,
          epoch,
          optimizerSlots: opt.state(),
        });
      }
    }
    const trainSeconds = (performance.now() - start) / 1e3 - evalSeconds;
    const evalStart = performance.now();
    await averageBuffers(model, ring);
    const { top1, top5 } = await evaluate(model, valLoader, valSet.files.length, ring);
    evalSeconds += (performance.now() - evalStart) / 1e3;
    const m: EpochMetrics = {
      optimizer: config.optimizer,
      epoch: epoch + 1,
      step,
      trainLoss: lossSum / Math.max(batches, 1),
      top1,
      top5,
      trainSeconds,
      wallSeconds: (performance.now() - start) / 1e3,
      imagesPerSecond: (batches * config.batchSize) / ((evalStart - epochStart) / 1e3),
      lr: typeof lr === 'number' ? lr : lr(Math.max(step - 1, 0)),
      refreshes,
    };
    history.push(m);
    if (rank === 0) {
      await appendFile(metricsFile, `${JSON.stringify(m)}\n`);
      const eta = ((config.epochs - epoch - 1) * trainSeconds) / (epoch + 1);
      log(
        `${config.optimizer} epoch ${epoch + 1}/${config.epochs}: loss ${m.trainLoss.toFixed(4)}, top-1 ${(top1 * 100).toFixed(2)}%, ` +
          `top-5 ${(top5 * 100).toFixed(2)}%, ${m.imagesPerSecond.toFixed(0)} img/s, ETA ${eta.toFixed(0)} s`,
      );
      await saveCheckpoint(join(config.out, 'last.ckpt'), model, {
        step,
        epoch: epoch + 1,
        optimizerSlots: opt.state(),
      });
    }
  }
  if (rank === 0) await saveWeights(model, join(config.out, 'weights.safetensors'));
  thor?.dispose();
  opt.dispose();
  model.dispose();
  return history;
}

/** Rank 0's initial weights (and buffers) on every rank. */
async function broadcastState(model: ResNet, ring: Ring): Promise<void> {
  const entries = model.state.entries.filter((e) => e.variable !== undefined);
  const names = entries.map((e) => e.name);
  const tensors = new Map(entries.map((e) => [e.name, e.variable as tf.Tensor]));
  const buf = await ring.broadcast(flatten(names, tensors), 0);
  const { tensors: received } = unflatten(names, new Map(entries.map((e) => [e.name, e])), buf);
  for (const e of entries) {
    const t = received.get(e.name) as tf.Tensor;
    e.variable?.assign(t);
    t.dispose();
  }
}

/** Batch-norm running statistics averaged over ranks, so every rank evaluates the same model. */
async function averageBuffers(model: ResNet, ring: Ring): Promise<void> {
  const entries = model.state.entries.filter((e) => e.kind === 'buffer');
  const names = entries.map((e) => e.name);
  const buf = await ring.allReduce(
    flatten(names, new Map(entries.map((e) => [e.name, e.variable as tf.Tensor]))),
    { op: 'mean' },
  );
  const { tensors } = unflatten(names, new Map(entries.map((e) => [e.name, e])), buf);
  for (const e of entries) {
    e.variable?.assign(tensors.get(e.name) as tf.Tensor);
    tensors.get(e.name)?.dispose();
  }
}

/** THOR's refresh: this rank's factors, averaged over ranks, then the same inverses everywhere. */
async function refresh(thor: Thor, taps: CurvatureTaps, ring: Ring, step: number): Promise<void> {
  const factors = thor.computeFactors(taps.all());
  const layers = [...factors.keys()];
  const parts = new Map<string, tf.Tensor>();
  for (const [layer, f] of factors) {
    parts.set(`${layer}/a`, f.a);
    parts.set(`${layer}/g`, f.g);
  }
  const keys = [...parts.keys()];
  const reduced = await ring.allReduce(flatten(keys, parts), { op: 'mean' });
  const { tensors } = unflatten(
    keys,
    new Map([...parts].map(([k, t]) => [k, { shape: t.shape }])),
    reduced,
  );
  tf.dispose([...parts.values()]);
  const averaged = new Map<string, FactorPair>(
    layers.map((l) => [
      l,
      { a: tensors.get(`${l}/a`) as tf.Tensor3D, g: tensors.get(`${l}/g`) as tf.Tensor3D },
    ]),
  );
  const report = { step, refreshed: [], retried: [], nonFinite: [], stopped: [] };
  const chosen = thor.selectRefresh(step, averaged, report);
  thor.setInverses(thor.invert(chosen, averaged, step, report));
  tf.dispose([...tensors.values()]);
}

/** Top-1/top-5 over the whole val split: each rank its shard, counted once per image. */
async function evaluate(
  model: ResNet,
  loader: DataLoader,
  total: number,
  ring: Ring,
): Promise<{ top1: number; top5: number }> {
  const rows: number[] = [];
  for await (const batch of loader.epoch(0)) rows.push(...scoreBatch(model, batch));
  const all = await ring.allGather(Float32Array.from(rows));
  const seen = new Set<number>();
  let top1 = 0;
  let top5 = 0;
  for (let i = 0; i < all.length; i += 3) {
    const index = all[i] as number;
    if (seen.has(index)) continue; // the sampler pads shards by repeating images
    seen.add(index);
    top1 += all[i + 1] as number;
    top5 += all[i + 2] as number;
  }
  if (seen.size !== total)
    throw new Error(`evaluate: expected ${total} val images, scored ${seen.size}`);
  return { top1: top1 / total, top5: top5 / total };
}

/** [index, top-1 hit, top-5 hit] per image. */
function scoreBatch(model: ResNet, batch: Batch): number[] {
  return tf.tidy(() => {
    const logits = model.predict(
      tf.tensor4d(batch.images, batch.shape as [number, number, number, number]),
    );
    const k = Math.min(5, logits.shape[1]);
    const top = tf.topk(logits, k).indices.arraySync() as number[][];
    const out: number[] = [];
    top.forEach((row, i) => {
      const label = batch.labels[i] as number;
      out.push(batch.indices[i] as number, row[0] === label ? 1 : 0, row.includes(label) ? 1 : 0);
    });
    return out;
  });
}
