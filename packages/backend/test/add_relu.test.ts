import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';

import { addRelu, initBackend } from '../dist/index.js';
import { values } from './reference.js';

/** Values, and gradients of sum(w · f(a, b)) for a and b, with f fused or apart; tensors leaked. */
function run(shape: number[], fused: boolean, same = false) {
  const n = shape.reduce((p, d) => p * d, 1);
  const a = tf.tensor(values(n, 3), shape);
  // Some sums exactly 0, some negative, most positive.
  const b = same
    ? a
    : tf.tensor(
        values(n, 5).map((v, i) => (i % 7 === 0 ? -values(n, 3)[i]! : v)),
        shape,
      );
  const w = tf.tensor(values(n, 9), shape);
  const f = (x: tf.Tensor, y: tf.Tensor) => (fused ? addRelu(x, y) : tf.relu(tf.add(x, y)));
  const before = tf.memory().numTensors;
  const y = f(a, b);
  const [da, db] = tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(w, f(x, z))))([a, b]);
  const out = { y: y.dataSync(), da: da!.dataSync(), db: db!.dataSync() };
  tf.dispose([y, da!, db!]);
  const leaked = tf.memory().numTensors - before;
  tf.dispose([a, b, w]);
  return { ...out, leaked };
}

describe('addRelu', () => {
  it.each(['wasm', 'cpu'] as const)(
    'equals relu(add(a, b)) on %s, values and gradients, on an odd shape',
    async (backend) => {
      await initBackend({ backend });
      // tfjs makes a few tensors once (cached constants) on a backend's first gradient: not leaks.
      run([2, 3], false);
      run([2, 3], true);
      for (const shape of [
        [3, 5, 7, 9],
        [2, 3],
      ]) {
        const apart = run(shape, false);
        const fused = run(shape, true);
        expect(Array.from(fused.y)).toEqual(Array.from(apart.y));
        expect(Array.from(fused.da)).toEqual(Array.from(apart.da));
        expect(Array.from(fused.db)).toEqual(Array.from(apart.db));
        expect(fused.y.some((v) => v === 0) && fused.y.some((v) => v > 0)).toBe(true);
        // relu(add) through tfjs's own gradients leaves one tensor behind here; the fused op no more.
        expect(fused.leaked).toBeLessThanOrEqual(apart.leaked);
      }
      // One tensor as both inputs: its gradient is the sum of the two.
      const apart = run([4, 5], false, true);
      const fused = run([4, 5], true, true);
      expect(Array.from(fused.da)).toEqual(Array.from(apart.da));
      expect(fused.leaked).toBeLessThanOrEqual(apart.leaked);
    },
  );

  it('keeps NaN and broadcasts as relu(add) does', async () => {
    await initBackend({ backend: 'wasm' });
    const y = addRelu(
      tf.tensor1d([NaN, -1, 2, 0, 1, -3, 4, 5, 6]),
      tf.tensor1d([1, 0, 1, 0, -1, 1, 1, 1, NaN]),
    );
    expect(Array.from(y.dataSync())).toEqual([NaN, 0, 3, 0, 0, 0, 5, 6, NaN]);
    const wide = addRelu(
      tf.tensor2d([
        [1, -2],
        [3, -4],
      ]),
      tf.tensor1d([1, 1]) as never,
    );
    expect(Array.from(wide.dataSync())).toEqual([2, 0, 4, 0]);
  });
});
