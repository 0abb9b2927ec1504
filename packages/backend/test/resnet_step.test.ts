import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';

import { initBackend } from '../dist/index.js';
import { relativeError, values } from './reference.js';

type Params = Record<string, tf.Tensor>;
const pad = (p: number): [[0, 0], [number, number], [number, number], [0, 0]] => [
  [0, 0],
  [p, p],
  [p, p],
  [0, 0],
];

/** Batch norm in training mode (batch statistics), as a ResNet computes it. */
function bn(x: tf.Tensor4D, p: Params, name: string): tf.Tensor4D {
  const { mean, variance } = tf.moments(x, [0, 1, 2]);
  return tf.batchNorm(
    x,
    mean,
    variance,
    p[`${name}.beta`],
    p[`${name}.gamma`],
    1e-5,
  ) as tf.Tensor4D;
}

function conv(x: tf.Tensor4D, p: Params, name: string, stride: number, padding: number) {
  return tf.conv2d(x, p[`${name}.w`] as tf.Tensor4D, stride, pad(padding));
}

/**
 * A ResNet v1.5 in miniature: 7×7/2 stem, 3×3/2 max-pool (padding 1), one bottleneck with its
 * stride on the 3×3 conv and a 1×1/2 downsample, global average pool, dense, label-smoothed
 * softmax cross-entropy: every kind of op a ResNet-50 train step runs.
 */
function loss(p: Params, images: tf.Tensor4D, labels: tf.Tensor2D): tf.Scalar {
  let x = tf.relu(bn(conv(images, p, 'conv1', 2, 3), p, 'bn1'));
  x = tf.maxPool(x, 3, 2, 1);
  const identity = bn(conv(x, p, 'down', 2, 0), p, 'downbn');
  let y = tf.relu(bn(conv(x, p, 'c1', 1, 0), p, 'b1'));
  y = tf.relu(bn(conv(y, p, 'c2', 2, 1), p, 'b2'));
  y = bn(conv(y, p, 'c3', 1, 0), p, 'b3');
  x = tf.relu(tf.add(y, identity)) as tf.Tensor4D;
  const pooled = tf.mean(x, [1, 2]) as tf.Tensor2D;
  const logits = tf.add(tf.matMul(pooled, p['fc.w'] as tf.Tensor2D), p['fc.b'] as tf.Tensor1D);
  return tf.losses.softmaxCrossEntropy(labels, logits, undefined, 0.1) as tf.Scalar;
}

const shapes: Record<string, number[]> = {
  'conv1.w': [7, 7, 3, 8],
  'down.w': [1, 1, 8, 16],
  'c1.w': [1, 1, 8, 4],
  'c2.w': [3, 3, 4, 4],
  'c3.w': [1, 1, 4, 16],
  'fc.w': [16, 10],
  'fc.b': [10],
};
for (const [name, c] of [
  ['bn1', 8],
  ['downbn', 16],
  ['b1', 4],
  ['b2', 4],
  ['b3', 16],
] as const) {
  shapes[`${name}.gamma`] = [c];
  shapes[`${name}.beta`] = [c];
}

async function trainStep(backend: 'wasm' | 'cpu') {
  await initBackend({ backend });
  const before = tf.memory().numTensors;
  const names = Object.keys(shapes);
  const vars = names.map((name, i) => {
    const shape = shapes[name] as number[];
    const size = shape.reduce((a, b) => a * b, 1);
    const init = name.endsWith('.gamma') ? new Float32Array(size).fill(1) : values(size, 100 + i);
    const scale = name.endsWith('.w') ? 1 / Math.sqrt(size / (shape[shape.length - 1] ?? 1)) : 0.1;
    const t = tf.tidy(() => tf.mul(tf.tensor(init, shape), name.endsWith('.gamma') ? 1 : scale));
    const v = tf.variable(t, true, name);
    t.dispose();
    return v;
  });
  const images = tf.tensor4d(values(2 * 33 * 31 * 3, 7), [2, 33, 31, 3]);
  const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([3, 8], 'int32'), 10)) as tf.Tensor2D;
  const params = () => Object.fromEntries(names.map((n, i) => [n, vars[i] as tf.Variable]));
  const { value, grads } = tf.variableGrads(() => loss(params(), images, labels));
  const out = {
    loss: (await value.data())[0] as number,
    grads: Object.fromEntries(names.map((n) => [n, (grads[n] as tf.Tensor).dataSync().slice()])),
  };
  // One plain SGD step, then the loss again: it must go down.
  tf.tidy(() =>
    names.forEach((n, i) =>
      (vars[i] as tf.Variable).assign(
        tf.sub(vars[i] as tf.Variable, tf.mul(grads[n] as tf.Tensor, 0.1)),
      ),
    ),
  );
  const after = tf.tidy(() => loss(params(), images, labels).dataSync()[0] as number);
  tf.dispose([value, images, labels, ...Object.values(grads), ...vars]);
  tf.disposeVariables();
  return { ...out, after, leaked: tf.memory().numTensors - before };
}

describe('a ResNet-style train step', () => {
  it('gives the same loss and gradients on wasm as on cpu, leaks nothing, and learns', async () => {
    const cpu = await trainStep('cpu');
    const wasm = await trainStep('wasm');
    expect(Math.abs(wasm.loss - cpu.loss) / cpu.loss).toBeLessThan(1e-5);
    for (const name of Object.keys(shapes)) {
      // Batch norm divides by small batch variances: float32 differences grow to ~1e-5 there.
      expect(
        relativeError(wasm.grads[name] as Float32Array, cpu.grads[name] as Float32Array),
        name,
      ).toBeLessThan(1e-4);
    }
    expect(wasm.after).toBeLessThan(wasm.loss);
    expect(wasm.leaked).toBe(0);
    expect(cpu.leaked).toBe(0);
  });
});
