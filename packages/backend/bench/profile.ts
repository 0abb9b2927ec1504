// npm run bench:profile [-- --steps 3 --batch 16 --threads 2 --top 20]
//
// Where the time of one ResNet-50 v1.5 train step goes (224², momentum SGD, the step of
// `bench:step` in one process): by phase (forward, backward, update) and by kernel (ms, share of
// the step, GFLOP/s or GB/s, calls), beside PyTorch's profiler table for the same step in the
// same run (torch_resnet50_profile.py, --threads threads; run first, not at the same time). Each
// side takes a warm-up step, times --steps plain steps, then profiles --steps steps and reports
// the profiled step of median length. The wasm backend runs one thread.
// Prints both tables side by side and one JSON line.
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';

import { initBackend } from '../dist/index.js';
import { profileTables } from './profile_table.js';
import { resnet50, trainStep, type StepPhase } from './resnet50.js';
import { profileStep, type StepProfile, type WasmProfile } from './step_profile.js';
import { torchProfile } from './torch_profile.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '3' },
    batch: { type: 'string', default: '16' },
    size: { type: 'string', default: '224' },
    threads: { type: 'string', default: '2' },
    top: { type: 'string', default: '20' },
  },
});
const steps = Number(values.steps);
const batch = Number(values.batch);
const size = Number(values.size);

let relaxedSimd = false;
async function ours(): Promise<WasmProfile> {
  ({ relaxedSimd } = await initBackend({ backend: 'wasm' }));
  const model = resnet50();
  const images = tf.randomNormal<tf.Rank.R4>([batch, size, size, 3]);
  const labels = tf.tidy(() =>
    tf.oneHot(tf.randomUniform([batch], 0, 1000, 'int32') as tf.Tensor1D, 1000),
  ) as tf.Tensor2D;
  const optimizer = tf.train.momentum(0.1, 0.9);
  tf.tidy(() => model.logits(tf.zeros<tf.Rank.R4>([1, size, size, 3]))); // creates the variables
  const step = (onPhaseEnd?: (phase: StepPhase) => void) =>
    trainStep(model, optimizer, images, labels, onPhaseEnd).dispose();

  step(); // warm-up
  const plain: { ms: number; phases: Record<StepPhase, number> }[] = [];
  for (let s = 0; s < steps; s++) {
    const at = [performance.now()];
    step(() => at.push(performance.now()));
    const ms = (i: number) => (at[i + 1] ?? NaN) - (at[i] ?? NaN);
    plain.push({
      ms: ms(0) + ms(1) + ms(2),
      phases: { forward: ms(0), backward: ms(1), update: ms(2) },
    });
  }
  const profiled: StepProfile[] = [];
  for (let s = 0; s < steps; s++) profiled.push(await profileStep(step));
  profiled.sort((a, b) => a.wallMs - b.wallMs);
  plain.sort((a, b) => a.ms - b.ms);
  const median = plain[plain.length >> 1] as (typeof plain)[number];
  return {
    plainStepMs: median.ms,
    plainPhasesMs: median.phases,
    profiledStepMs: profiled.map((p) => p.wallMs),
    ...(profiled[profiled.length >> 1] as StepProfile),
  };
}

const load = [loadavg()];
const peer = await torchProfile({ batch, size, steps, threads: Number(values.threads) });
load.push(loadavg());
const mine = await ours();
load.push(loadavg());
const fmtLoad = (i: number) => (load[i] ?? []).map((x) => x.toFixed(2)).join(' ');

const torch = typeof peer === 'string' ? undefined : peer;
const cores = availableParallelism();
console.log(
  `ResNet-50 v1.5 train step, ${size}², batch ${batch}, momentum SGD, one process; ${cores} cores\n` +
    `load average (1, 5, 15 min): ${fmtLoad(0)} at start, ${fmtLoad(1)} after PyTorch, ${fmtLoad(2)} at end`,
);
console.log(
  `thor-ts wasm (1 thread, Node.js ${process.version}, relaxed SIMD ${relaxedSimd ? 'on' : 'off'}): ${mine.wallMs.toFixed(0)} ms profiled step (median of ${steps}), ` +
    `${mine.plainStepMs.toFixed(0)} ms plain step (median of ${steps})`,
);
console.log(
  torch === undefined
    ? `PyTorch: ${peer as string}`
    : `${torch.peer.replace('pytorch', 'PyTorch')} (${torch.threads} threads, ${torch.allocator}): ` +
        `${torch.wallMs.toFixed(0)} ms profiled step (median of ${steps}), ` +
        `${torch.plainStepMs.toFixed(0)} ms plain step (median of ${steps})`,
);
console.log(['', ...profileTables(mine, torch, Number(values.top))].join('\n'));
console.log(
  JSON.stringify({
    bench: 'profile',
    batch,
    size,
    steps,
    cores,
    loadavg: { start: load[0], afterPyTorch: load[1], end: load[2] },
    wasm: {
      ...mine,
      kernels: mine.kernels.map((k) => ({
        ...k,
        share: k.ms / mine.wallMs,
        ...(k.kind === 'flops' ? { gflops: k.amount / 1e6 / k.ms } : {}),
        ...(k.kind === 'bytes' ? { gbps: k.amount / 1e6 / k.ms } : {}),
      })),
    },
    pytorch: peer,
  }),
);
