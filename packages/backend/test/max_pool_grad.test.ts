import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';

import { initBackend } from '../dist/index.js';
import { relativeError, values } from './reference.js';

type Pad = 'same' | 'valid' | number;
const cases: [number[], number, number, Pad][] = [
  [[2, 12, 12, 5], 3, 2, 1], // ResNet's stem pool: 3×3, stride 2, padding 1
  [[1, 11, 9, 3], 3, 2, 'same'],
  [[2, 7, 8, 4], 2, 2, 'valid'],
  [[1, 6, 6, 9], 3, 1, 'same'],
];

async function poolGrad(
  backend: 'wasm' | 'cpu',
  shape: number[],
  k: number,
  s: number,
  pad: Pad,
  x: Float32Array,
) {
  await initBackend({ backend });
  const input = tf.tensor4d(x, shape as [number, number, number, number]);
  const y = tf.maxPool(input, k, s, pad);
  const r = tf.tensor(values(y.size, 32), y.shape);
  const dx = tf.grad((a) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, k, s, pad), r)))(input);
  const out = dx.dataSync().slice();
  tf.dispose([input, y, r, dx]);
  return out;
}

describe('MaxPoolGrad on wasm', () => {
  it.each(cases)('equals tfjs-backend-cpu: %j k%d s%d pad %s', async (shape, k, s, pad) => {
    const x = values(
      shape.reduce((p, d) => p * d, 1),
      31,
    );
    const cpu = await poolGrad('cpu', shape, k, s, pad, x);
    const wasm = await poolGrad('wasm', shape, k, s, pad, x);
    expect(relativeError(wasm, cpu)).toBeLessThan(1e-6);
  });

  it('sends a tied window’s gradient to its first maximum, as tfjs-backend-cpu does', async () => {
    const shape = [1, 5, 5, 2];
    const x = new Float32Array(50).fill(1);
    const cpu = await poolGrad('cpu', shape, 3, 2, 1, x);
    const wasm = await poolGrad('wasm', shape, 3, 2, 1, x);
    expect(Array.from(wasm)).toEqual(Array.from(cpu));
  });
});
