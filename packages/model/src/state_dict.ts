import { tensor, tidy } from '@tensorflow/tfjs-core';

import type { Model } from './model.js';
import {
  readSafetensors,
  writeSafetensors,
  type StoredTensor,
  type TensorToStore,
} from './safetensors.js';
import type { Layout, StateEntry } from './state.js';

/** What a load found: keys the model has and the file lacks, the reverse, and shape mismatches. */
export interface LoadReport {
  loaded: string[];
  missing: string[];
  unexpected: string[];
  misshaped: { key: string; expected: number[]; found: number[] }[];
}

/** The shape torchvision gives an entry: OIHW kernels, [out, in] linear weights. */
export function torchShape(layout: Layout, shape: number[]): number[] {
  if (layout === 'conv') return [shape[3], shape[2], shape[0], shape[1]] as number[];
  if (layout === 'linear') return [shape[1], shape[0]] as number[];
  return shape;
}

/** HWIO → OIHW and [in, out] → [out, in]; `toTorch = false` goes back. */
export function convertLayout(
  layout: Layout,
  shape: number[],
  data: ArrayLike<number>,
  toTorch: boolean,
): Float32Array {
  const out = new Float32Array(data.length);
  if (layout === 'conv') {
    const [kh, kw, ci, co] = shape as [number, number, number, number];
    for (let h = 0; h < kh; h++)
      for (let w = 0; w < kw; w++)
        for (let i = 0; i < ci; i++)
          for (let o = 0; o < co; o++) {
            const hwio = ((h * kw + w) * ci + i) * co + o;
            const oihw = ((o * ci + i) * kh + h) * kw + w;
            if (toTorch) out[oihw] = data[hwio] as number;
            else out[hwio] = data[oihw] as number;
          }
  } else if (layout === 'linear') {
    const [n, m] = shape as [number, number];
    for (let i = 0; i < n; i++)
      for (let j = 0; j < m; j++) {
        if (toTorch) out[j * n + i] = data[i * m + j] as number;
        else out[i * m + j] = data[j * n + i] as number;
      }
  } else {
    out.set(Array.from(data));
  }
  return out;
}

function entryToTorch(e: StateEntry): TensorToStore {
  if (e.kind === 'counter') return { dtype: 'I64', shape: [], data: [e.counter?.value ?? 0] };
  const data = (e.variable as NonNullable<StateEntry['variable']>).dataSync() as Float32Array;
  return {
    dtype: 'F32',
    shape: torchShape(e.layout, e.shape),
    data: convertLayout(e.layout, e.shape, data, true),
  };
}

/** The model's state as torchvision names it and lays it out (OIHW, [out, in]), in its order. */
export function stateDict(model: Model): Map<string, TensorToStore> {
  return new Map(model.state.entries.map((e) => [e.name, entryToTorch(e)]));
}

/**
 * Loads a torchvision-layout state into the model. Strict (the default): any missing, unexpected
 * or mis-shaped key throws an error listing all of them and changes nothing. Not strict: loads
 * what matches and reports the rest.
 */
export function loadStateDict(
  model: Model,
  tensors: Map<string, StoredTensor>,
  options: { strict?: boolean; where?: string } = {},
): LoadReport {
  const report: LoadReport = { loaded: [], missing: [], unexpected: [], misshaped: [] };
  const names = new Set(model.state.entries.map((e) => e.name));
  for (const key of tensors.keys()) if (!names.has(key)) report.unexpected.push(key);
  const matching: [StateEntry, StoredTensor][] = [];
  for (const e of model.state.entries) {
    const t = tensors.get(e.name);
    if (t === undefined) {
      report.missing.push(e.name);
      continue;
    }
    const expected = torchShape(e.layout, e.shape);
    if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
      report.misshaped.push({ key: e.name, expected, found: t.shape });
      continue;
    }
    matching.push([e, t]);
  }
  const problems = report.missing.length + report.unexpected.length + report.misshaped.length;
  if ((options.strict ?? true) && problems > 0) {
    const list = (label: string, keys: string[]) =>
      keys.length > 0 ? `\n  ${label} (${keys.length}): ${keys.join(', ')}` : '';
    throw new Error(
      `${options.where ?? 'state dict'}: does not match the model (nothing was loaded)` +
        list('missing', report.missing) +
        list('unexpected', report.unexpected) +
        list(
          'mis-shaped',
          report.misshaped.map((m) => `${m.key} expected [${m.expected}] found [${m.found}]`),
        ),
    );
  }
  for (const [e, t] of matching) {
    if (e.kind === 'counter') {
      (e.counter as { value: number }).value = t.data[0] ?? 0;
    } else {
      const values = convertLayout(e.layout, e.shape, t.data, false);
      tidy(() => e.variable?.assign(tensor(values, e.shape, 'float32')));
    }
    report.loaded.push(e.name);
  }
  return report;
}

/**
 * Writes the model's weights as a torchvision-compatible safetensors file (atomically), with what
 * the model records about itself in `__metadata__` (its architecture and options when built by
 * `buildArch`, batch norm's epsilon and momentum) beside `format: pt`.
 */
export async function saveWeights(model: Model, path: string): Promise<void> {
  const metadata = { ...Object.fromEntries(model.state.metadata), format: 'pt' };
  await writeSafetensors(path, stateDict(model), metadata);
}

/** Reads torchvision-named safetensors weights into the model (see `loadStateDict`). */
export async function loadWeights(
  model: Model,
  path: string,
  options: { strict?: boolean } = {},
): Promise<LoadReport> {
  const { tensors, metadata } = await readSafetensors(path);
  // The architectures, when both are known and differ, say at once what a key list would.
  const file = metadata['arch'];
  const ours = model.state.metadata.get('arch');
  const where =
    file !== undefined && ours !== undefined && file !== ours
      ? `${path} (weights of a ${file}, the model is a ${ours})`
      : path;
  return loadStateDict(model, tensors, { ...options, where });
}
