// One train step under tfjs-core's profiler (`tf.profile`), summed by kernel and by phase, for
// `bench:profile`. tfjs-core times each kernel with the backend's `time()`; the wasm backend's is
// the wall time of the kernel's synchronous call. Calls nest: the engine copies the tensors it
// saves for the backward pass (an Identity kernel) inside the kernel that made them, and a
// `tf.customGrad` op (softmax cross-entropy) is recorded around the kernels it runs. So each
// record's own time is its time less that of the records made inside it: a kernel's own time is
// counted as that kernel, a customGrad op's goes with the engine's bookkeeping and JavaScript,
// the part of the step's wall time spent outside kernels.
import * as tf from '@tensorflow/tfjs-core';

import { kernelCost, type KernelCost } from './kernel_cost.js';
import type { StepPhase } from './resnet50.js';

export const phases: readonly StepPhase[] = ['forward', 'backward', 'update'];

export interface KernelTotals {
  name: string;
  calls: number;
  /** Own time: less that of the kernels run inside it. */
  ms: number;
  kind: KernelCost['kind'];
  /** FLOPs (convolutions, matrix products) or bytes read and written (the rest); 0 for views. */
  amount: number;
  msByPhase: Record<StepPhase, number>;
}

export interface PhaseTotals {
  wallMs: number;
  kernelMs: number;
}

export interface StepProfile {
  wallMs: number;
  /** The kernels' own times summed: wallMs less this is bookkeeping and JavaScript. */
  kernelMs: number;
  phases: Record<StepPhase, PhaseTotals>;
  /** Registered kernels, slowest first. */
  kernels: KernelTotals[];
  /** `tf.customGrad` ops, with their own time (their kernels' is counted under kernels). */
  composites: { name: string; calls: number; ms: number }[];
}

/** The profiled step of median length, with the timing of the plain (unprofiled) steps. */
export interface WasmProfile extends StepProfile {
  /** The plain step of median length, and its phases. */
  plainStepMs: number;
  plainPhasesMs: Record<StepPhase, number>;
  /** Every profiled step's wall time, shortest first. */
  profiledStepMs: number[];
}

const byPhase = (f: (p: StepPhase) => number) =>
  Object.fromEntries(phases.map((p) => [p, f(p)])) as Record<StepPhase, number>;

type Timer = tf.KernelBackend['time'];
type ProfileInfo = Awaited<ReturnType<typeof tf.profile>>;

/**
 * Profiles `step`, which must call `onPhaseEnd` at the end of its forward pass, its backward pass
 * and its update, in that order, and compute synchronously (as the wasm backend does).
 */
export async function profileStep(
  step: (onPhaseEnd: (phase: StepPhase) => void) => void,
): Promise<StepProfile> {
  // The depth of each timed call, in the order they end: the order tfjs records them in.
  const backend = tf.backend();
  const time: Timer = backend.time.bind(backend);
  const depths: number[] = [];
  let depth = 0;
  backend.time = (f) => {
    const d = depth++;
    try {
      return time(f);
    } finally {
      depth--;
      depths.push(d);
    }
  };
  const ends = new Map<StepPhase, { at: number; records: number }>();
  let start = NaN;
  let info: ProfileInfo;
  try {
    info = await tf.profile(() => {
      start = performance.now();
      step((phase) =>
        ends.set(phase, {
          at: performance.now(),
          records: tf.engine().state.activeProfile.kernels.length,
        }),
      );
      return [];
    });
  } finally {
    backend.time = time;
  }
  if (depths.length !== info.kernels.length) {
    throw new Error(
      `profileStep: expected one timed call per profiled kernel, found ${depths.length} calls for ${info.kernels.length} kernels`,
    );
  }
  const bounds = phases.map((p) => {
    const end = ends.get(p);
    if (end === undefined) throw new Error(`profileStep: the step never ended its ${p} phase`);
    return end;
  });
  const phaseOf = (i: number) => phases[bounds.findIndex((b) => i < b.records)] ?? 'update';

  const kernels = new Map<string, KernelTotals>();
  const composites = new Map<string, { name: string; calls: number; ms: number }>();
  const name = tf.getBackend();
  // A record ends after those made inside it: childMs[d] sums the finished records at depth d
  // since the last one at depth d − 1 ended.
  const childMs: number[] = [];
  info.kernels.forEach((k, i) => {
    const total = k.kernelTimeMs;
    if (typeof total !== 'number') {
      throw new Error(`profileStep: ${k.name} has no time: ${JSON.stringify(total)}`);
    }
    const d = depths[i] as number;
    const ms = total - (childMs[d + 1] ?? 0);
    childMs[d + 1] = 0;
    childMs[d] = (childMs[d] ?? 0) + total;
    if (tf.getKernel(k.name, name) === undefined) {
      const c = composites.get(k.name) ?? { name: k.name, calls: 0, ms: 0 };
      c.calls++;
      c.ms += ms;
      composites.set(k.name, c);
      return;
    }
    const cost = kernelCost(k.name, k.inputShapes, k.outputShapes);
    let row = kernels.get(k.name);
    if (row === undefined) {
      row = {
        name: k.name,
        calls: 0,
        ms: 0,
        kind: cost.kind,
        amount: 0,
        msByPhase: byPhase(() => 0),
      };
      kernels.set(k.name, row);
    }
    row.calls++;
    row.ms += ms;
    row.amount += cost.kind === 'view' ? 0 : cost.amount;
    row.msByPhase[phaseOf(i)] += ms;
  });

  const rows = [...kernels.values()].sort((a, b) => b.ms - a.ms);
  const sum = (f: (r: KernelTotals) => number) => rows.reduce((s, r) => s + f(r), 0);
  const at = [start, ...bounds.map((b) => b.at)];
  const wallMs = (i: number) => (at[i + 1] ?? NaN) - (at[i] ?? NaN);
  return {
    wallMs: (at[phases.length] ?? NaN) - start,
    kernelMs: sum((r) => r.ms),
    phases: Object.fromEntries(
      phases.map((p, i) => [p, { wallMs: wallMs(i), kernelMs: sum((r) => r.msByPhase[p]) }]),
    ) as Record<StepPhase, PhaseTotals>,
    kernels: rows,
    composites: [...composites.values()],
  };
}
