import * as tf from '@tensorflow/tfjs-core';
import { openImageNet, type Batch } from '@thor-ts/data';
import type { Ring } from '@thor-ts/distributed';
import { loadCheckpoint, loadWeights, predict, type Model } from '@thor-ts/model';

import {
  buildLoader,
  buildModel,
  buildTransforms,
  checkClasses,
  commonImageSize,
} from './build.js';
import type { TrainConfig } from './config.js';
import type { EvalSource } from './eval_batches.js';

export interface Accuracy {
  top1: number;
  top5: number;
  /** Images scored, each once. */
  images: number;
}

/**
 * Top-1/top-5 over a whole split: each rank scores its shard, the scores are gathered, and an
 * image the sampler repeated to pad a shard counts once. An image that cannot be decoded counts
 * as a miss.
 */
export async function evaluate(
  model: Model,
  loader: EvalSource,
  ring: Ring,
  onBatch?: (done: number, total: number) => void,
): Promise<Accuracy> {
  const rows: number[] = [];
  let done = 0;
  const skippedBefore = loader.skipped.length;
  for await (const batch of loader.epoch(0)) {
    rows.push(...scoreBatch(model, batch));
    onBatch?.(++done, loader.numBatches);
  }
  // A file that could not be decoded is scored as a miss, so it is counted, never dropped.
  for (const s of loader.skipped.slice(skippedBefore)) rows.push(s.index, 0, 0);
  const all = await ring.allGather(Float32Array.from(rows));
  const seen = new Set<number>();
  let top1 = 0;
  let top5 = 0;
  for (let i = 0; i < all.length; i += 3) {
    const index = all[i] as number;
    if (seen.has(index)) continue;
    seen.add(index);
    top1 += all[i + 1] as number;
    top5 += all[i + 2] as number;
  }
  const total = loader.dataset.files.length;
  if (seen.size !== total) {
    throw new Error(`evaluate: expected ${total} images scored, found ${seen.size}`);
  }
  return { top1: top1 / total, top5: top5 / total, images: total };
}

/** [index, top-1 hit, top-5 hit] per image. */
function scoreBatch(model: Model, batch: Batch): number[] {
  return tf.tidy(() => {
    const logits = predict(
      model,
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

/**
 * `thor-ts eval`: the model of `config` with the weights at `weights` (a .safetensors state dict,
 * e.g. a run's weights.safetensors or torchvision's converted ones, or a last.ckpt), scored on a
 * split of `config.data`, sharded over the ring.
 */
export async function evaluateWeights(
  config: TrainConfig,
  weights: string,
  ring: Ring,
  split = 'val',
): Promise<Accuracy> {
  const set = await openImageNet(config.data, { split });
  checkClasses(config, set, split);
  const model = buildModel(config);
  try {
    if (weights.endsWith('.ckpt')) {
      const ckpt = await loadCheckpoint(weights, model);
      tf.dispose(Object.values(ckpt.optimizerSlots));
    } else {
      await loadWeights(model, weights);
    }
    const perRank = Math.max(1, Math.floor(config.batchSize / ring.worldSize));
    const loader = buildLoader(
      config,
      set,
      perRank,
      buildTransforms(config, await commonImageSize(set)).eval,
      ring,
      false,
    );
    return await evaluate(model, loader, ring);
  } finally {
    model.dispose();
  }
}
