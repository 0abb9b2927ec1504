import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';

import { initBackend, readInto, tensorOwning } from '../dist/index.js';
import { values } from './reference.js';

describe('readInto', () => {
  it.each(['wasm', 'cpu'] as const)(
    "copies a tensor's values into a buffer at an offset on %s, as dataSync reads them",
    async (backend) => {
      await initBackend({ backend });
      const a = tf.tensor(values(35, 3), [5, 7]);
      // A tensor a kernel wrote (not one made from an array), after a heap that may have grown.
      const b = tf.tidy(() => tf.mul(tf.tensor(values(6, 5), [2, 3]), 2));
      const big = tf.zeros([1 << 20]);
      const into = new Float32Array(45).fill(-1);
      readInto(a, into, 3);
      readInto(b, into, 38);
      expect(Array.from(into.subarray(0, 3))).toEqual([-1, -1, -1]);
      expect(Array.from(into.subarray(3, 38))).toEqual(Array.from(a.dataSync()));
      expect(Array.from(into.subarray(38, 44))).toEqual(Array.from(b.dataSync()));
      expect(into[44]).toBe(-1);
      tf.dispose([a, b, big]);
    },
  );

  it('refuses a tensor that does not fit, or that is not float32, naming both', async () => {
    await initBackend({ backend: 'wasm' });
    const a = tf.ones([2, 3]);
    const i = tf.ones([2], 'int32');
    expect(() => readInto(a, new Float32Array(8), 3)).toThrow(
      'readInto: expected 6 values (shape [2,3]) to fit a buffer of 8 from offset 3, found they do not',
    );
    expect(() => readInto(a, new Float32Array(8), -1)).toThrow(/from offset -1/);
    expect(() => readInto(i, new Float32Array(8))).toThrow(
      'readInto: expected a float32 tensor, found int32 of shape [2]',
    );
    tf.dispose([a, i]);
  });
});

describe('tensorOwning', () => {
  it.each(['wasm', 'cpu'] as const)(
    'keeps its values, and a variable made from it keeps them, when the source is refilled (%s)',
    async (backend) => {
      await initBackend({ backend });
      const buf = new Float32Array(values(12, 7));
      const expected = Array.from(buf.subarray(2, 8));
      const t = tensorOwning(buf.subarray(2, 8), [2, 3]);
      const v = tf.variable(t, false);
      buf.fill(0);
      expect(Array.from(t.dataSync())).toEqual(expected);
      expect(Array.from(v.dataSync())).toEqual(expected);
      expect(t.shape).toEqual([2, 3]);
      tf.dispose([t, v]);
    },
  );
});
