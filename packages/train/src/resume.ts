import { existsSync } from 'node:fs';

import * as tf from '@tensorflow/tfjs-core';
import type { Ring } from '@thor-ts/distributed';
import { loadCheckpoint, loadWeights, saveCheckpoint, type Model } from '@thor-ts/model';
import {
  flatten,
  unflatten,
  type MomentumSGD,
  type Thor,
  type ThorStateMeta,
} from '@thor-ts/optim';

import type { TrainConfig } from './config.js';
import { ConfigError } from './config_error.js';
import { nonFiniteState } from './finite_guard.js';
import type { EpochMetrics } from './trainer.js';

/** Where a run stands, beyond its tensors: enough to continue it exactly. */
export interface RunPosition {
  /** Optimizer steps done. */
  step: number;
  /** The epoch being trained (0-based) and the steps of it done. */
  epoch: number;
  stepInEpoch: number;
  /** This epoch's summed training loss, over `stepInEpoch` steps less those skipped. */
  lossSum: number;
  /** Steps of this epoch skipped for a non-finite loss or gradient (absent in older checkpoints: 0). */
  skippedInEpoch?: number;
  /** This epoch's summed training top-1 (absent in checkpoints that predate it: 0). */
  top1Sum?: number;
  trainSeconds: number;
  evalSeconds: number;
  refreshes: number;
  history: EpochMetrics[];
}

interface Header {
  position: RunPosition;
  sgdSteps: number;
  slots: [string, number[]][];
  thor: ThorStateMeta | null;
}

/**
 * A checkpoint of the whole run, written atomically by rank 0 (call it on every rank). Its model
 * holds batch norm's running statistics averaged over the ranks (what evaluation uses); beside
 * them it keeps each rank's own (`bn-buffers/rank<r>`), so that a run resumed mid-epoch on as
 * many ranks goes on with exactly the statistics each rank had. The live models are left as
 * they are.
 */
export async function saveRun(
  path: string,
  model: Model,
  opt: MomentumSGD,
  thor: Thor | undefined,
  position: RunPosition,
  ring: Ring,
): Promise<void> {
  const entries = bufferEntries(model);
  const names = entries.map((e) => e.name);
  const own = flatten(names, new Map(entries.map((e) => [e.name, e.variable as tf.Tensor])));
  const all = await ring.allGather(own);
  if (ring.rank !== 0) return;
  const perRank = Array.from({ length: ring.worldSize }, (_, r) =>
    all.subarray(r * own.length, (r + 1) * own.length),
  );
  const mean = new Float32Array(own.length);
  for (let i = 0; i < mean.length; i++) {
    let sum = 0;
    for (const b of perRank) sum += b[i] as number;
    mean[i] = sum / ring.worldSize;
  }
  assign(entries, mean);
  try {
    refuseNonFinite(model, path);
    const thorState = thor?.state();
    const slots: Record<string, tf.Tensor> = { ...opt.state() };
    for (const [k, t] of Object.entries(thorState?.tensors ?? {})) slots[`thor/${k}`] = t;
    const kept = perRank.map((b) => tf.tensor1d(b, 'float32'));
    kept.forEach((t, r) => (slots[`bn-buffers/rank${r}`] = t));
    try {
      await saveCheckpoint(path, model, {
        step: position.step,
        epoch: position.epoch,
        optimizerSlots: slots,
        optimizer: { sgdSteps: opt.stepCount, thor: thorState?.meta ?? null },
        extra: { ...position, workers: ring.worldSize },
      });
    } finally {
      tf.dispose(kept);
    }
  } finally {
    assign(entries, own);
  }
}

/**
 * Every rank starts from rank 0's state: the checkpoint at `path` when rank 0 has one (model,
 * momentum, THOR's inverses, counters), else rank 0's freshly initialized model. Returns where
 * the run continues, or undefined for a fresh start.
 */
export async function startFrom(
  path: string | undefined,
  model: Model,
  opt: MomentumSGD,
  thor: Thor | undefined,
  ring: Ring,
  init?: TrainConfig['init'],
  log: (line: string) => void = console.log,
): Promise<RunPosition | undefined> {
  let header: Header | undefined;
  let slots: Record<string, tf.Tensor> = {};
  const resuming = path !== undefined && existsSync(path);
  // A fresh run from given weights: rank 0 loads them, the broadcast below hands them on. Whether
  // that worked is broadcast first, so that every rank ends with the same error when it did not.
  let refused: string | undefined;
  if (ring.rank === 0 && !resuming && init !== undefined) {
    try {
      const report = await loadWeights(model, init.weights, { strict: init.strict ?? true });
      const skipped = [
        ...report.missing,
        ...report.unexpected,
        ...report.misshaped.map((m) => m.key),
      ];
      log(
        `starting from ${init.weights}: ${report.loaded.length} tensors loaded` +
          (skipped.length > 0 ? `; not loaded (init.strict is false): ${skipped.join(', ')}` : ''),
      );
    } catch (e) {
      refused = `field 'init.weights': ${(e as Error).message}`;
    }
  }
  if (init !== undefined) {
    refused = await broadcastJson(refused, ring);
    if (refused !== undefined) throw new ConfigError(refused);
  }
  if (ring.rank === 0 && resuming) {
    const ckpt = await loadCheckpoint(path, model);
    const optimizer = ckpt.optimizer as { sgdSteps: number; thor: ThorStateMeta | null } | null;
    if (optimizer === null || typeof ckpt.extra !== 'object' || ckpt.extra === null) {
      throw new Error(
        `${path}: expected a training checkpoint (optimizer and position), found none`,
      );
    }
    slots = ckpt.optimizerSlots;
    header = {
      position: ckpt.extra as RunPosition,
      sgdSteps: optimizer.sgdSteps,
      slots: Object.entries(slots).map(([k, t]) => [k, t.shape]),
      thor: optimizer.thor,
    };
  }
  header = await broadcastJson(header, ring);
  await broadcastTensors(model, ring);
  if (header === undefined) return undefined;
  if ((header.thor === null) !== (thor === undefined)) {
    throw new ConfigError(
      `${path}: the checkpoint was written by a ${header.thor === null ? 'SGD' : 'THOR'} run, ` +
        `this run uses ${thor === undefined ? 'SGD' : 'THOR'}; use another output directory`,
    );
  }
  const names = header.slots.map(([k]) => k);
  const shapes = new Map(header.slots.map(([k, shape]) => [k, { shape }]));
  const local =
    ring.rank === 0
      ? flatten(names, new Map(Object.entries(slots)))
      : new Float32Array(names.reduce((n, k) => n + size(shapes.get(k)!.shape), 0));
  tf.dispose(Object.values(slots));
  const { tensors } = unflatten(names, shapes, await ring.broadcast(local, 0));
  const momentum: Record<string, tf.Tensor> = {};
  const inverses: Record<string, tf.Tensor> = {};
  const saved = header.position as RunPosition & { workers?: number };
  for (const [k, t] of tensors) {
    if (k.startsWith('thor/')) inverses[k.slice(5)] = t;
    else if (!k.startsWith('bn-buffers/')) momentum[k] = t;
    else {
      // This rank's own statistics, when the run had as many ranks; else the average stands.
      if (k === `bn-buffers/rank${ring.rank}` && saved.workers === ring.worldSize) {
        assign(bufferEntries(model), t.dataSync() as Float32Array);
      }
      t.dispose();
    }
  }
  opt.restore(momentum, header.sgdSteps);
  tf.dispose(Object.values(momentum));
  if (thor !== undefined && header.thor !== null) thor.restore(inverses, header.thor);
  return header.position;
}

/** Rank 0's parameters and buffers on every rank. */
async function broadcastTensors(model: Model, ring: Ring): Promise<void> {
  const entries = model.state.entries.filter((e) => e.variable !== undefined);
  const names = entries.map((e) => e.name);
  const tensors = new Map(entries.map((e) => [e.name, e.variable as tf.Tensor]));
  const buf = await ring.broadcast(flatten(names, tensors), 0);
  assign(entries, buf);
}

/**
 * Batch-norm running statistics averaged over ranks, so every rank evaluates the same model. A
 * running average is linear, so averaging mid-epoch (for a checkpoint) and again at the epoch's
 * end gives the same statistics as averaging once.
 */
export async function averageBuffers(model: Model, ring: Ring): Promise<void> {
  const entries = bufferEntries(model);
  const names = entries.map((e) => e.name);
  const tensors = new Map(entries.map((e) => [e.name, e.variable as tf.Tensor]));
  assign(entries, await ring.allReduce(flatten(names, tensors), { op: 'mean' }));
}

/** The model's batch-norm running statistics (its buffers), in state order. */
function bufferEntries(model: Model): Model['state']['entries'] {
  return model.state.entries.filter((e) => e.kind === 'buffer' && e.variable !== undefined);
}

function assign(entries: Model['state']['entries'], buf: Float32Array): void {
  const names = entries.map((e) => e.name);
  const { tensors } = unflatten(names, new Map(entries.map((e) => [e.name, e])), buf);
  for (const e of entries) {
    const t = tensors.get(e.name) as tf.Tensor;
    e.variable?.assign(t);
    t.dispose();
  }
}

/** Rank 0's JSON value (or undefined) on every rank, as UTF-8 bytes in two broadcasts. */
async function broadcastJson<T>(value: T | undefined, ring: Ring): Promise<T | undefined> {
  const bytes = new TextEncoder().encode(ring.rank === 0 ? (JSON.stringify(value) ?? '') : '');
  const length = (await ring.broadcast(new Float32Array([bytes.length]), 0))[0] as number;
  const received = await ring.broadcast(
    ring.rank === 0 ? Float32Array.from(bytes) : new Float32Array(length),
    0,
  );
  const text = new TextDecoder().decode(Uint8Array.from(received));
  return text === '' ? undefined : (JSON.parse(text) as T);
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** An error instead of a file when any of the model's parameters or buffers is NaN or infinite. */
export function refuseNonFinite(model: Model, path: string): void {
  const bad = nonFiniteState(model);
  if (bad.length > 0) {
    throw new Error(
      `${path}: not written, since ${bad.length} of the model's tensors hold NaN or infinite values (${bad.slice(0, 3).join(', ')}${bad.length > 3 ? ', …' : ''})`,
    );
  }
}
