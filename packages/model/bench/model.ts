// npm run bench:model [-- --batch 8 --steps 3 --arch resnet18,resnet50 --backend wasm]
//
// Forward (eval mode) and train-step (momentum SGD, batch norm in training mode) img/s of
// torchvision-shaped ResNets at 224² in this process (one core: the wasm backend runs one
// thread), beside PyTorch with one thread on the same input sizes in the same run when Debian's
// python3-torch is installed. Medians over --steps after a warm-up; a table and one JSON line.
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '@thor-ts/backend';

import { resnet18, resnet50, type ResNet } from '../dist/index.js';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '8' },
    steps: { type: 'string', default: '3' },
    arch: { type: 'string', default: 'resnet18,resnet50' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const batch = Number(values.batch);
const steps = Number(values.steps);
await initBackend({ backend: values.backend as BackendName });
const archs: Record<string, () => ResNet> = { resnet18, resnet50 };

function median(fn: () => void): number {
  const times: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    fn();
    times.push((performance.now() - t0) / 1e3);
  }
  times.shift();
  times.sort((a, b) => a - b);
  return times[times.length >> 1] as number;
}

async function torch(arch: string, threads: number): Promise<Record<string, number> | undefined> {
  const script = fileURLToPath(new URL('torch_model.py', import.meta.url));
  try {
    const { stdout } = await promisify(execFile)('/usr/bin/python3', [
      script,
      '--arch',
      arch,
      '--batch',
      String(batch),
      '--threads',
      String(threads),
      '--steps',
      String(steps),
    ]);
    return JSON.parse(stdout.trim().split('\n').pop() as string) as Record<string, number>;
  } catch {
    return undefined;
  }
}

const rows = [];
for (const arch of values.arch.split(',')) {
  const make = archs[arch];
  if (make === undefined) throw new Error(`--arch: expected resnet18 or resnet50, found '${arch}'`);
  const model = make();
  const x = tf.randomNormal<tf.Rank.R4>([batch, 224, 224, 3]);
  const y = tf.tidy(() =>
    tf.oneHot(tf.randomUniform([batch], 0, 1000, 'int32') as tf.Tensor1D, 1000),
  );
  const forward = median(() => tf.dispose(model.predict(x).dataSync()));
  const opt = tf.train.momentum(0.01, 0.9);
  const train = median(() => {
    const loss = opt.minimize(
      () => tf.losses.softmaxCrossEntropy(y, model.forward(x, { training: true })) as tf.Scalar,
      true,
    );
    loss?.dataSync();
    loss?.dispose();
  });
  tf.dispose([x, y]);
  opt.dispose();
  model.dispose();
  rows.push({
    arch,
    forward: batch / forward,
    train: batch / train,
    pytorch: await torch(arch, 1),
    pytorchAllCores: await torch(arch, availableParallelism()),
  });
}
console.log(`backend ${values.backend}, 1 thread, batch ${batch}, 224², median of ${steps}; img/s`);
const cores = availableParallelism();
const head = (t: string) => t.padStart(9);
console.log(
  `${'model'.padEnd(10)}${head('forward')}${head('PT 1 thr')}${head(`PT ${cores} thr`)}` +
    `${head('train')}${head('PT 1 thr')}${head(`PT ${cores} thr`)}`,
);
for (const r of rows) {
  const f = (v: number | undefined) => ` ${(v === undefined ? 'n/a' : v.toFixed(2)).padStart(8)}`;
  const pt = (p: Record<string, number> | undefined, key: string) => f(p?.[key]);
  console.log(
    `${r.arch.padEnd(10)}${f(r.forward)}${pt(r.pytorch, 'forwardImagesPerSecond')}${pt(r.pytorchAllCores, 'forwardImagesPerSecond')}` +
      `${f(r.train)}${pt(r.pytorch, 'trainImagesPerSecond')}${pt(r.pytorchAllCores, 'trainImagesPerSecond')}`,
  );
}
console.log(JSON.stringify({ bench: 'model', backend: values.backend, batch, steps, rows }));
