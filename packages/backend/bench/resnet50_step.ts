// One process's ResNet-50 v1.5 train steps on a tfjs backend, for `npm run bench:step`.
//   tsx bench/resnet50_step.ts --batch 16 --steps 3 [--backend wasm]
// Prints one JSON line: median seconds per step (after one warm-up step) and img/s.
//
// The network is written out here with tfjs ops (torchvision's layout: [3, 4, 6, 3] bottlenecks,
// stride on the 3×3 conv, batch norm in training mode, 1000 classes, momentum SGD); it measures
// the backend, not a model API.
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';

import { batchNormTrain, initBackend, type BackendName } from '../dist/index.js';

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
await initBackend({ backend: values.backend as BackendName });

const params = new Map<string, tf.Variable>();
function param(name: string, shape: number[], init: 'he' | 'one' | 'zero'): tf.Variable {
  let v = params.get(name);
  if (v === undefined) {
    const fanOut = (shape[0] ?? 1) * (shape[1] ?? 1) * (shape[shape.length - 1] ?? 1);
    const t = tf.tidy(() =>
      init === 'he'
        ? tf.randomNormal(shape, 0, Math.sqrt(2 / fanOut))
        : init === 'one'
          ? tf.ones(shape)
          : tf.zeros(shape),
    );
    v = tf.variable(t, true, name);
    t.dispose();
    params.set(name, v);
  }
  return v;
}

const pad = (p: number): [[0, 0], [number, number], [number, number], [0, 0]] => [
  [0, 0],
  [p, p],
  [p, p],
  [0, 0],
];

function convBn(x: tf.Tensor4D, name: string, k: number, cout: number, stride: number) {
  const cin = x.shape[3];
  const w = param(`${name}.weight`, [k, k, cin, cout], 'he') as tf.Tensor4D;
  const y = tf.conv2d(x, w, stride, pad((k - 1) >> 1));
  const gamma = param(`${name}.bn.weight`, [cout], 'one') as tf.Tensor1D;
  const beta = param(`${name}.bn.bias`, [cout], 'zero') as tf.Tensor1D;
  return batchNormTrain(y, gamma, beta, 1e-5).y;
}

function bottleneck(x: tf.Tensor4D, name: string, width: number, stride: number) {
  const out = width * 4;
  let y = tf.relu(convBn(x, `${name}.conv1`, 1, width, 1));
  y = tf.relu(convBn(y, `${name}.conv2`, 3, width, stride));
  y = convBn(y, `${name}.conv3`, 1, out, 1);
  const shortcut =
    stride !== 1 || x.shape[3] !== out ? convBn(x, `${name}.downsample`, 1, out, stride) : x;
  return tf.relu(tf.add(y, shortcut)) as tf.Tensor4D;
}

function logits(images: tf.Tensor4D): tf.Tensor2D {
  let x = tf.relu(convBn(images, 'conv1', 7, 64, 2));
  x = tf.maxPool(x, 3, 2, 1);
  [3, 4, 6, 3].forEach((blocks, stage) => {
    for (let b = 0; b < blocks; b++) {
      const stride = b === 0 && stage > 0 ? 2 : 1;
      x = bottleneck(x, `layer${stage + 1}.${b}`, 64 * 2 ** stage, stride);
    }
  });
  const pooled = tf.mean(x, [1, 2]) as tf.Tensor2D;
  const fc = param('fc.weight', [2048, 1000], 'he') as tf.Tensor2D;
  return tf.add(tf.matMul(pooled, fc), param('fc.bias', [1000], 'zero')) as tf.Tensor2D;
}

const images = tf.randomNormal<tf.Rank.R4>([batch, size, size, 3]);
const labels = tf.tidy(() =>
  tf.oneHot(tf.randomUniform([batch], 0, 1000, 'int32') as tf.Tensor1D, 1000),
);
const optimizer = tf.train.momentum(0.1, 0.9);
// Create the variables (the first forward pass does), so minimize() finds them.
tf.tidy(() => logits(tf.zeros<tf.Rank.R4>([1, size, size, 3])));

function step(): number {
  const loss = optimizer.minimize(
    () => tf.losses.softmaxCrossEntropy(labels, logits(images)) as tf.Scalar,
    true,
  ) as tf.Scalar;
  const value = loss.dataSync()[0] as number;
  loss.dispose();
  return value;
}

if (process.env['THOR_PROFILE']) {
  for (let r = 0; r < 2; r++) {
    const prof = await tf.profile(() => {
      step();
      return [];
    });
    const by = new Map<string, number>();
    for (const k of prof.kernels)
      by.set(k.name, (by.get(k.name) ?? 0) + (k.kernelTimeMs as number));
    if (r === 1 && process.env['THOR_PROFILE'] === 'conv') {
      for (const k of prof.kernels.filter((k) => k.name === 'Conv2D')) {
        const [x, w] = k.inputShapes as number[][];
        const o = k.outputShapes[0] as number[];
        const gf = (2 * o[0]! * o[1]! * o[2]! * o[3]! * w![0]! * w![1]! * w![2]!) / 1e9;
        console.log(
          'conv',
          JSON.stringify(x),
          JSON.stringify(w),
          (k.kernelTimeMs as number).toFixed(1),
          'ms',
          (gf / ((k.kernelTimeMs as number) / 1e3)).toFixed(1),
          'GFLOP/s',
        );
      }
    }
    const mem = (
      (tf.backend() as unknown as { wasm: { asm: { memory: { buffer: ArrayBuffer } } } }).wasm.asm
        .memory.buffer.byteLength /
      2 ** 20
    ).toFixed(0);
    console.log(
      'total',
      [...by.values()].reduce((a, b) => a + b, 0).toFixed(0),
      'ms; heap',
      mem,
      'MB;',
      [...by.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 16)
        .map(([n, t]) => `${n}:${t.toFixed(0)}`)
        .join(' '),
    );
  }
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
const count = [...params.values()].reduce((n, v) => n + v.size, 0);
console.log(
  JSON.stringify({
    bench: 'resnet50-step',
    backend: values.backend,
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
