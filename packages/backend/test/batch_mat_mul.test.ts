import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';

import { initBackend } from '../dist/index.js';
import { matmul64, relativeError, values } from './reference.js';

interface Case {
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

const cases: Case[] = [
  { a: [5, 7], b: [7, 3], transposeA: false, transposeB: false },
  { a: [7, 5], b: [7, 3], transposeA: true, transposeB: false },
  { a: [5, 7], b: [3, 7], transposeA: false, transposeB: true },
  { a: [7, 5], b: [3, 7], transposeA: true, transposeB: true },
  { a: [4, 129, 33], b: [4, 33, 65], transposeA: false, transposeB: false },
  { a: [3, 33, 17], b: [3, 9, 33], transposeA: true, transposeB: true },
  { a: [2, 3, 6, 5], b: [5, 4], transposeA: false, transposeB: false },
  { a: [6, 5], b: [3, 6, 4], transposeA: true, transposeB: false },
  { a: [1, 1], b: [1, 1], transposeA: false, transposeB: false },
  { a: [2, 128, 128], b: [2, 128, 128], transposeA: true, transposeB: false },
];

const as3d = (s: number[]): [number, number, number] => [
  s.slice(0, -2).reduce((p, d) => p * d, 1),
  s[s.length - 2] as number,
  s[s.length - 1] as number,
];

describe('BatchMatMul on wasm', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
  });

  it.each(cases.map((c) => [JSON.stringify(c), c] as const))(
    'matches the float64 product: %s',
    (_, c) => {
      const before = tf.memory().numTensors;
      const av = values(
        c.a.reduce((p, d) => p * d),
        11,
      );
      const bv = values(
        c.b.reduce((p, d) => p * d),
        12,
      );
      const a = tf.tensor(av, c.a);
      const b = tf.tensor(bv, c.b);
      const out = tf.matMul(a, b, c.transposeA, c.transposeB);
      const expected = matmul64(av, as3d(c.a), bv, as3d(c.b), c.transposeA, c.transposeB);
      expect(relativeError(out.dataSync(), expected)).toBeLessThan(1e-5);
      // The batch dimensions broadcast as tfjs's matMul defines (the longer prefix here).
      const m = c.transposeA ? c.a[c.a.length - 1] : c.a[c.a.length - 2];
      const n = c.transposeB ? c.b[c.b.length - 2] : c.b[c.b.length - 1];
      const outer = c.a.length > c.b.length ? c.a.slice(0, -2) : c.b.slice(0, -2);
      expect(out.shape).toEqual([...outer, m, n]);
      tf.dispose([a, b, out]);
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it('gives zeros for a sum over nothing and an empty result for an empty operand', () => {
    const z = tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4]));
    expect(Array.from(z.dataSync())).toEqual(new Array(12).fill(0));
    const e = tf.matMul(tf.zeros([0, 5]), tf.ones([5, 4]));
    expect(e.shape).toEqual([0, 4]);
  });

  it('rejects mismatched inner dimensions naming both shapes', () => {
    const a = tf.zeros([2, 3]);
    const b = tf.zeros([4, 5]);
    expect(() =>
      tf.engine().runKernel('BatchMatMul', { a, b }, {
        transposeA: false,
        transposeB: false,
      } as never),
    ).toThrow(/inner dimensions differ: a \[2,3\].*has 3, b \[4,5\].*has 4/);
  });

  it('runs the dense-layer gradients (transposed products) through it', () => {
    const xv = values(8 * 6, 13);
    const wv = values(6 * 4, 14);
    const x = tf.tensor2d(xv, [8, 6]);
    const w = tf.tensor2d(wv, [6, 4]);
    const [dx, dw] = tf.grads((a, b) => tf.sum(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D)))([
      x,
      w,
    ]);
    // d/dx Σ xw = 1·wᵀ (each row: the row sums of w); d/dw = xᵀ·1 (each column: column sums of x).
    const ones = new Float32Array(8 * 4).fill(1);
    expect(
      relativeError(dx!.dataSync(), matmul64(ones, [1, 8, 4], wv, [1, 6, 4], false, true)),
    ).toBeLessThan(1e-6);
    expect(
      relativeError(dw!.dataSync(), matmul64(xv, [1, 8, 6], ones, [1, 8, 4], true, false)),
    ).toBeLessThan(1e-6);
  });
});
