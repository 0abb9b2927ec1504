import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { runNode } from './run_node.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const entry = pathToFileURL(join(packageDir, 'dist', 'index.js')).href;

/**
 * One process per engine: a stack of conv → batch norm → ReLU blocks with a residual add and a
 * shared weight (so gradients accumulate), differentiated with tfjs's own engine or the lean one.
 * Prints the gradients, the tensors left, and the wasm heap's size (its peak: it never shrinks).
 */
const script = (lean: boolean) => `
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, batchNormTrain } from '${entry}';
await initBackend({ leanGradients: ${lean} });
const seeded = (shape, seed) => tf.randomNormal(shape, 0, 0.2, 'float32', seed);
const x = seeded([4, 48, 48, 32], 1);
const w = tf.variable(seeded([3, 3, 32, 32], 2), true, 'w');
const w2 = tf.variable(seeded([1, 1, 32, 32], 3), true, 'w2');
const g = tf.variable(tf.ones([32]), true, 'g');
const b = tf.variable(tf.zeros([32]), true, 'b');
const before = tf.memory().numTensors;
const heap = () => tf.backend().wasm.HEAPU8.length;
const f = () => {
  let h = x;
  for (let i = 0; i < 12; i++) {
    const y = tf.relu(batchNormTrain(tf.conv2d(h, i % 3 === 2 ? w2 : w, 1, 'same'), g, b).y);
    h = i % 2 === 1 ? tf.add(h, y) : y;
  }
  return tf.mean(tf.square(h));
};
const { value, grads } = tf.variableGrads(f);
const out = { loss: value.dataSync()[0] };
for (const [k, t] of Object.entries(grads)) out[k] = Array.from(t.dataSync().slice(0, 64));
tf.dispose([value, ...Object.values(grads)]);
// A second-order gradient goes through tfjs's own path and still works.
const a0 = tf.tensor1d([1, 2]);
const d2 = tf.grad((a) => tf.grad((c) => tf.sum(tf.mul(tf.mul(c, c), c)))(a))(a0);
out.secondOrder = Array.from(d2.dataSync());
tf.dispose([a0, d2]);
out.leaked = tf.memory().numTensors - before;
out.heapMiB = heap() / 2 ** 20;
console.log(JSON.stringify(out));
`;

describe('lean gradients', () => {
  it('give the same gradients as tfjs, leak nothing, and lower the peak heap', async () => {
    const stock = JSON.parse(await runNode(script(false), packageDir));
    const lean = JSON.parse(await runNode(script(true), packageDir));
    for (const key of ['loss', 'w', 'w2', 'g', 'b']) expect(lean[key], key).toEqual(stock[key]);
    // d/da d/dc Σ c³ = 6a
    expect(lean.secondOrder).toEqual([6, 12]);
    expect(lean.leaked).toBe(0);
    expect(stock.leaked).toBe(0);
    // Activations are 4·48·48·32 floats = 1.1 MiB each, ~4 kept per layer over 12 layers.
    expect(lean.heapMiB).toBeLessThan(stock.heapMiB * 0.8);
    console.log(`peak wasm heap: tfjs ${stock.heapMiB} MiB, lean ${lean.heapMiB} MiB`);
  });
});
