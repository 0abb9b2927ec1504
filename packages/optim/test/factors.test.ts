import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { useFactorKernel } from '../dist/factor_kernel.js';
import { diagonalBlocks } from '../dist/factors.js';
import { values } from './values.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

afterEach(() => useFactorKernel(true));

describe('diagonalBlocks', () => {
  // Rows longer than one chunk (4096) and column counts below, at and past the block size, with
  // a narrow last block: each entry is checked against Σ_r x[r, i]·x[r, j] / divisor summed in
  // float64 by definition, and padding outside the columns must be exactly zero.
  for (const [m, k, block, path] of [
    [5000, 20, 8, 'wasm'],
    [9000, 16, 16, 'wasm'],
    [300, 7, 16, 'wasm'],
    [4100, 40, 128, 'wasm'],
    [5000, 20, 8, 'tfjs'],
    [300, 7, 16, 'tfjs'],
    [4100, 40, 128, 'tfjs'],
  ] as const) {
    it(`matches rowsᵀ·rows/divisor on its diagonal blocks (${path}): rows ${m}, columns ${k}, blocks of ${block}`, () => {
      useFactorKernel(path === 'wasm');
      const x = values(m * k, m + k);
      const rows = tf.tensor2d(Float32Array.from(x), [m, k]);
      const before = tf.memory().numTensors;
      const blocks = diagonalBlocks(rows, block, m);
      expect(tf.memory().numTensors).toBe(before + 1);
      const nb = Math.ceil(k / block);
      expect(blocks.shape).toEqual([nb, block, block]);
      const got = blocks.dataSync();
      const xf = Float32Array.from(x);
      for (let kb = 0; kb < nb; kb++) {
        for (let i = 0; i < block; i++) {
          for (let j = 0; j < block; j++) {
            const [ci, cj] = [kb * block + i, kb * block + j];
            const at = (kb * block + i) * block + j;
            if (ci >= k || cj >= k) {
              expect(got[at]).toBe(0);
              continue;
            }
            let want = 0;
            for (let r = 0; r < m; r++) want += xf[r * k + ci]! * xf[r * k + cj]!;
            expect(got[at]).toBeCloseTo(want / m, 5);
          }
        }
      }
      tf.dispose([rows, blocks]);
    });
  }
});
