import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import type { LayerTap } from '@thor-ts/model';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { hasWasmToolchain, rebuildsCommittedWasm } from '../../../wasm_build_check.js';
import { hasFactorKernel, useFactorKernel } from '../dist/factor_kernel.js';
import { inputFactorBlocks } from '../dist/factors.js';
import { Thor } from '../dist/index.js';
import { values } from './values.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});
afterEach(() => useFactorKernel(true));

/** A = XᵀX / (N·T) over the im2col rows, by definition in float64: the full [k, k] matrix. */
function definitionA(
  xv: Float64Array,
  [n, h, w, c]: readonly [number, number, number, number],
  kh: number,
  kw: number,
  s: number,
  pt: number,
  pl: number,
  ho: number,
  wo: number,
): Float64Array {
  const k = kh * kw * c;
  const a = new Float64Array(k * k);
  const row = new Float64Array(k);
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < ho; oy++)
      for (let ox = 0; ox < wo; ox++) {
        for (let i = 0; i < kh; i++)
          for (let j = 0; j < kw; j++)
            for (let q = 0; q < c; q++) {
              const [iy, ix] = [oy * s + i - pt, ox * s + j - pl];
              const inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
              row[(i * kw + j) * c + q] = inside
                ? Math.fround(xv[((b * h + iy) * w + ix) * c + q]!)
                : 0;
            }
        for (let p = 0; p < k; p++) for (let q = 0; q < k; q++) a[p * k + q]! += row[p]! * row[q]!;
      }
  const rows = n * ho * wo;
  return a.map((v) => v / rows);
}

describe('the wasm factor kernel', () => {
  it('runs here (WebAssembly SIMD)', () => {
    expect(hasFactorKernel()).toBe(true);
  });

  // Strides 1 and 2, padding on all sides or none, 1×1 and 3×3 kernels; channel counts that put
  // a block boundary inside a tap (48: 128 = 2·48 + 32), rows over several 256-row panels, and
  // widths that are not multiples of 8.
  for (const [shape, kh, s, pad, block] of [
    [[2, 9, 7, 48], 3, 1, 1, 128],
    [[3, 8, 8, 5], 3, 2, 1, 16],
    [[2, 11, 6, 3], 3, 1, 0, 128],
    [[4, 6, 6, 20], 1, 2, 0, 8],
    [[1, 5, 5, 7], 3, 1, 2, 10],
  ] as const) {
    it(`equals XᵀX/(N·T) of the im2col rows, blockwise: input [${shape.join(', ')}], ${kh}×${kh}, stride ${s}, padding ${pad}, blocks of ${block}`, () => {
      const [n, h, w, c] = shape;
      const xv = values(n * h * w * c, n + h + w + c);
      const ho = Math.floor((h + 2 * pad - kh) / s) + 1;
      const wo = Math.floor((w + 2 * pad - kh) / s) + 1;
      const src: LayerTap = {
        layer: 'conv',
        weight: 'conv.weight',
        geometry: { kind: 'conv2d', kernel: [kh, kh], stride: s, padding: [pad, pad, pad, pad] },
        input: tf.tensor4d(Float32Array.from(xv), [n, h, w, c]),
      };
      const want = definitionA(xv, shape, kh, kh, s, pad, pad, ho, wo);
      const k = kh * kh * c;
      const nb = Math.ceil(k / block);
      const byKernel = inputFactorBlocks(src, block, n * ho * wo);
      useFactorKernel(false);
      const byTfjs = inputFactorBlocks(src, block, n * ho * wo);
      for (const blocks of [byKernel, byTfjs]) {
        expect(blocks.shape).toEqual([nb, block, block]);
        const got = blocks.dataSync();
        for (let kb = 0; kb < nb; kb++)
          for (let i = 0; i < block; i++)
            for (let j = 0; j < block; j++) {
              const [ci, cj] = [kb * block + i, kb * block + j];
              const at = (kb * block + i) * block + j;
              if (ci >= k || cj >= k) expect(got[at]).toBe(0);
              else expect(got[at]).toBeCloseTo(want[ci * k + cj]!, 5);
            }
      }
      tf.dispose([src.input, byKernel, byTfjs]);
    });
  }

  it('gives THOR the same preconditioned gradient as the tfjs path', () => {
    const [n, h, w, c, cout] = [4, 6, 6, 24, 40];
    const src: LayerTap = {
      layer: 'conv',
      weight: 'conv.weight',
      geometry: { kind: 'conv2d', kernel: [3, 3], stride: 1, padding: [1, 1, 1, 1] },
      input: tf.tensor4d(Float32Array.from(values(n * h * w * c, 3)), [n, h, w, c]),
      outputGrad: tf.tensor4d(Float32Array.from(values(n * h * w * cout, 4)), [n, h, w, cout]),
    };
    const grad = tf.tensor4d(Float32Array.from(values(9 * c * cout, 5)), [3, 3, c, cout]);
    const step = (): Float32Array => {
      const thor = new Thor({ damping: 0.03, refresh: { every: 1 } });
      thor.update([src], 0);
      const out = thor.precondition(new Map([['conv.weight', grad as tf.Tensor]]));
      const v = out.get('conv.weight')!.dataSync() as Float32Array;
      thor.dispose();
      return v;
    };
    const byKernel = step();
    useFactorKernel(false);
    const byTfjs = step();
    // Against the gradient's largest entry: the tfjs path's products may run relaxed SIMD's fused
    // multiply-add (Node.js ≥ 22), which rounds differently, and an entry near zero has no
    // meaningful relative error of its own.
    const scale = Math.max(...Array.from(byTfjs, Math.abs));
    let worst = 0;
    for (let i = 0; i < byKernel.length; i++) {
      worst = Math.max(worst, Math.abs(byKernel[i]! - byTfjs[i]!) / scale);
    }
    expect(scale).toBeGreaterThan(0);
    expect(worst).toBeLessThan(1e-5);
    tf.dispose([src.input, src.outputGrad!, grad]);
  });

  it.skipIf(!hasWasmToolchain())(
    'is committed as scripts/build-wasm.sh builds it from csrc/factors.c',
    () => {
      expect(rebuildsCommittedWasm(packageDir, join(packageDir, 'src', 'factors_wasm.ts'))).toBe(
        true,
      );
    },
  );
});
