// One process's ResNet-50 v1.5 train steps on a tfjs backend, for `npm run bench:step`.
//   tsx bench/resnet50_step.ts --batch 16 --steps 3 [--backend wasm]
// Prints one JSON line: median seconds per step (after one warm-up step) and img/s.
// The network and the step (momentum SGD) are in resnet50.ts; `npm run bench:profile` breaks a
// step down by kernel and phase.
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';

import { initBackend, type BackendName } from '../dist/index.js';
import { resnet50, trainStep } from './resnet50.js';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '16' },
    steps: { type: 'string', default: '3' },
    size: { type: 'string', default: '224' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const batch = Number(values.batch);
const size = Number(values.size);
const init = await initBackend({ backend: values.backend as BackendName });

const model = resnet50();
const images = tf.randomNormal<tf.Rank.R4>([batch, size, size, 3]);
const labels = tf.tidy(() =>
  tf.oneHot(tf.randomUniform([batch], 0, 1000, 'int32') as tf.Tensor1D, 1000),
) as tf.Tensor2D;
const optimizer = tf.train.momentum(0.1, 0.9);
// Create the variables (the first forward pass does), so the gradients find them.
tf.tidy(() => model.logits(tf.zeros<tf.Rank.R4>([1, size, size, 3])));

function step(): number {
  const loss = trainStep(model, optimizer, images, labels);
  const value = loss.dataSync()[0] as number;
  loss.dispose();
  return value;
}

/** The wasm heap's size: it only grows, so it is the peak so far. */
function heapMiB(): number | undefined {
  const heap = (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8;
  return heap === undefined ? undefined : heap.length / 2 ** 20;
}

const times: number[] = [];
let loss = NaN;
for (let s = 0; s <= Number(values.steps); s++) {
  const t0 = performance.now();
  loss = step();
  times.push((performance.now() - t0) / 1e3);
}
times.shift();
times.sort((a, b) => a - b);
const seconds = times[times.length >> 1] as number;
const count = [...model.params.values()].reduce((n, v) => n + v.size, 0);
console.log(
  JSON.stringify({
    bench: 'resnet50-step',
    backend: values.backend,
    relaxedSimd: init.relaxedSimd,
    node: process.version,
    batch,
    size,
    params: count,
    secondsPerStep: seconds,
    imagesPerSecond: batch / seconds,
    loss,
    tensorBytes: tf.memory().numBytes,
    wasmHeapMiB: heapMiB(),
  }),
);
