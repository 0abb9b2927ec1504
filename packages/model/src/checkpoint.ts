import { tensor, type Tensor } from '@tensorflow/tfjs-core';

import type { Model } from './model.js';
import type { RngState } from './rng.js';
import { readSafetensors, writeSafetensors, type TensorToStore } from './safetensors.js';
import { loadStateDict, stateDict, type LoadReport } from './state_dict.js';

const format = 'thor-ts-checkpoint';

/** Everything a run needs to continue: the model, the optimizer's state, counters and RNG. */
export interface CheckpointState {
  step: number;
  epoch: number;
  rng?: RngState;
  /** The optimizer's named tensors (momentum slots, curvature factors, counters), as they are. */
  optimizerSlots?: Record<string, Tensor>;
  /** The optimizer's other state (hyperparameters, counters), as JSON. */
  optimizer?: unknown;
  extra?: unknown;
}

export interface LoadedCheckpoint extends Omit<CheckpointState, 'optimizerSlots'> {
  optimizerSlots: Record<string, Tensor>;
  report: LoadReport;
}

/**
 * Saves a checkpoint as one safetensors file, written atomically (temporary file, flush, rename):
 * the model under `model.` in torchvision's layout, optimizer tensors under `optimizer.`, the
 * rest as JSON metadata.
 */
export async function saveCheckpoint(
  path: string,
  model: Model,
  state: CheckpointState,
): Promise<void> {
  const tensors = new Map<string, TensorToStore>();
  for (const [k, t] of stateDict(model)) tensors.set(`model.${k}`, t);
  for (const [k, t] of Object.entries(state.optimizerSlots ?? {})) {
    if (t.dtype !== 'float32' && t.dtype !== 'int32') {
      throw new Error(
        `saveCheckpoint: optimizer slot '${k}' is ${t.dtype}, expected float32 or int32`,
      );
    }
    tensors.set(`optimizer.${k}`, {
      dtype: t.dtype === 'int32' ? 'I64' : 'F32',
      shape: t.shape,
      data: t.dataSync(),
    });
  }
  await writeSafetensors(path, tensors, {
    format,
    version: '1',
    step: String(state.step),
    epoch: String(state.epoch),
    rng: JSON.stringify(state.rng ?? null),
    optimizer: JSON.stringify(state.optimizer ?? null),
    extra: JSON.stringify(state.extra ?? null),
  });
}

/**
 * Restores a checkpoint into `model` and returns the rest. A truncated file, another format, or a
 * model that does not match (strict, the default) is an error that names the file and the keys;
 * the model is left as it was.
 */
export async function loadCheckpoint(
  path: string,
  model: Model,
  options: { strict?: boolean } = {},
): Promise<LoadedCheckpoint> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata['format'] !== format) {
    throw new Error(
      `${path}: expected a thor-ts checkpoint (metadata format '${format}'), found format '${metadata['format'] ?? '(none)'}'`,
    );
  }
  const modelTensors = new Map(
    [...tensors].filter(([k]) => k.startsWith('model.')).map(([k, t]) => [k.slice(6), t]),
  );
  const report = loadStateDict(model, modelTensors, { ...options, where: path });
  const optimizerSlots: Record<string, Tensor> = {};
  for (const [k, t] of tensors) {
    if (!k.startsWith('optimizer.')) continue;
    optimizerSlots[k.slice(10)] =
      t.data instanceof Float32Array
        ? tensor(t.data, t.shape, 'float32')
        : tensor(Int32Array.from(t.data), t.shape, 'int32');
  }
  const json = (key: string) => JSON.parse(metadata[key] ?? 'null') as unknown;
  return {
    step: Number(metadata['step']),
    epoch: Number(metadata['epoch']),
    rng: (json('rng') ?? undefined) as RngState | undefined,
    optimizer: json('optimizer') ?? undefined,
    extra: json('extra') ?? undefined,
    optimizerSlots,
    report,
  };
}
