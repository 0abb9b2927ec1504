import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';

import { initBackend } from '../dist/index.js';
import {
  conv2d64,
  conv2dFilterGrad64,
  conv2dInputGrad64,
  relativeError,
  values,
} from './reference.js';

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];
interface Case {
  x: [number, number, number, number];
  k: [number, number];
  co: number;
  strides: [number, number];
  pad: Pad;
}

const explicit = (t: number, b: number, l: number, r: number): Pad => [
  [0, 0],
  [t, b],
  [l, r],
  [0, 0],
];

// Odd sizes, every stride/kernel/padding combination ResNets use, and some they do not.
const cases: Case[] = [
  { x: [2, 7, 7, 3], k: [3, 3], co: 5, strides: [1, 1], pad: 'same' },
  { x: [2, 8, 8, 3], k: [3, 3], co: 5, strides: [2, 2], pad: 'same' },
  { x: [1, 9, 9, 4], k: [3, 3], co: 6, strides: [2, 2], pad: explicit(1, 1, 1, 1) },
  { x: [2, 9, 7, 6], k: [3, 3], co: 5, strides: [2, 2], pad: 'valid' },
  { x: [2, 8, 8, 4], k: [1, 1], co: 6, strides: [2, 2], pad: 'valid' },
  { x: [3, 5, 6, 5], k: [1, 1], co: 7, strides: [1, 1], pad: 'valid' },
  { x: [1, 11, 11, 3], k: [7, 7], co: 4, strides: [2, 2], pad: explicit(3, 3, 3, 3) },
  { x: [1, 13, 10, 3], k: [7, 7], co: 8, strides: [2, 2], pad: 'same' },
  { x: [1, 5, 6, 5], k: [2, 3], co: 3, strides: [2, 3], pad: 'same' },
  { x: [2, 10, 9, 3], k: [5, 3], co: 4, strides: [3, 2], pad: explicit(2, 0, 1, 2) },
  { x: [1, 6, 6, 2], k: [1, 1], co: 3, strides: [3, 3], pad: 'valid' },
  { x: [1, 4, 4, 33], k: [3, 3], co: 17, strides: [1, 1], pad: explicit(0, 2, 2, 0) },
  // GEMM blocks: depth 300 > 256 and 520 > 512 output channels, 25 positions (not 4k); depth
  // 4608 > the im2col chunk's 112 rows of 144 positions.
  { x: [1, 5, 5, 300], k: [1, 1], co: 520, strides: [1, 1], pad: 'valid' },
  { x: [1, 12, 12, 512], k: [3, 3], co: 9, strides: [1, 1], pad: 'same' },
  // Windows read in place: output columns past one 512-column block and an edge panel; output
  // positions over two chunks, the second starting mid-row.
  { x: [1, 5, 5, 40], k: [3, 3], co: 523, strides: [2, 2], pad: 'same' },
  { x: [2, 28, 27, 40], k: [3, 3], co: 21, strides: [1, 1], pad: 'same' },
  // The filter gradient read in place past one 512-column block, with an edge panel.
  { x: [1, 6, 5, 4], k: [3, 3], co: 603, strides: [1, 1], pad: 'same' },
  // A 1×1 filter gradient read in place over several blocks of 256 positions, with an edge panel.
  { x: [3, 11, 10, 8], k: [1, 1], co: 13, strides: [1, 1], pad: 'valid' },
  // Winograd F(4×4, 3×3) (3×3, stride 1, channels multiples of 4 from 8): output sizes that
  // leave partial tiles, padding on one side only, tiles over several chunks, depth 260 > 256
  // and 516 > 512 output channels.
  { x: [2, 9, 7, 12], k: [3, 3], co: 8, strides: [1, 1], pad: 'same' },
  { x: [1, 7, 8, 16], k: [3, 3], co: 20, strides: [1, 1], pad: 'valid' },
  { x: [2, 6, 5, 8], k: [3, 3], co: 12, strides: [1, 1], pad: explicit(0, 2, 1, 0) },
  { x: [3, 28, 27, 16], k: [3, 3], co: 16, strides: [1, 1], pad: 'same' },
  { x: [1, 6, 5, 260], k: [3, 3], co: 516, strides: [1, 1], pad: 'same' },
];

const geometry = (c: Case, ho: number, wo: number) => {
  const [n, h, w, ci] = c.x;
  const info = tf.backend_util.computeConv2DInfo(c.x, [...c.k, ci, c.co], c.strides, 1, c.pad);
  return {
    n,
    h,
    w,
    ci,
    co: c.co,
    kh: c.k[0],
    kw: c.k[1],
    sh: c.strides[0],
    sw: c.strides[1],
    pt: info.padInfo.top,
    pl: info.padInfo.left,
    ho,
    wo,
  };
};

/**
 * The largest relative error (against float64) a case may show: Winograd's F(4×4, 3×3) rounds
 * more than a direct product (its transforms scale values by up to 8 and 1/24 before the sums;
 * 1.2e-5 at 260 → 516 channels), so its cases get 5e-5; every other path 1e-5.
 */
const tolerance = (c: Case, winograd: boolean) =>
  winograd &&
  c.k[0] === 3 &&
  c.k[1] === 3 &&
  c.strides[0] === 1 &&
  c.strides[1] === 1 &&
  c.x[3] >= 8 &&
  c.co >= 8 &&
  c.x[3] % 4 === 0 &&
  c.co % 4 === 0
    ? 5e-5
    : 1e-5;

describe.each([
  { name: 'wasm', backend: 'wasm', winograd: true },
  { name: 'wasm, direct 3×3s (winograd: false)', backend: 'wasm', winograd: false },
  { name: 'cpu', backend: 'cpu', winograd: false },
] as const)('conv2d and its gradients on $name', ({ backend, winograd }) => {
  beforeAll(async () => {
    const report = await initBackend({ backend, winograd });
    expect(report.winograd).toBe(winograd);
  });

  it.each(cases.map((c) => [JSON.stringify(c), c] as const))(
    'match the float64 reference: %s',
    (_, c) => {
      const before = tf.memory().numTensors;
      const [n, h, w, ci] = c.x;
      const xv = values(n * h * w * ci, 1);
      const wv = values(c.k[0] * c.k[1] * ci * c.co, 2);
      const x = tf.tensor4d(xv, c.x);
      const f = tf.tensor4d(wv, [...c.k, ci, c.co]);
      const y = tf.conv2d(x, f, c.strides, c.pad);
      const [, ho, wo] = y.shape;
      const dyv = values(y.size, 3);
      const dy = tf.tensor4d(dyv, y.shape);
      // The gradient of Σ conv(x, f) · dy is (dx, dw) for that dy.
      const [dx, dw] = tf.grads((a, b) =>
        tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad), dy)),
      )([x, f]) as [tf.Tensor, tf.Tensor];
      const g = geometry(c, ho, wo);
      const within = tolerance(c, winograd);
      expect(relativeError(y.dataSync(), conv2d64(g, xv, wv))).toBeLessThan(within);
      expect(dx.shape).toEqual(c.x);
      expect(dw.shape).toEqual([...c.k, ci, c.co]);
      expect(relativeError(dx.dataSync(), conv2dInputGrad64(g, dyv, wv))).toBeLessThan(within);
      expect(relativeError(dw.dataSync(), conv2dFilterGrad64(g, xv, dyv))).toBeLessThan(within);
      tf.dispose([x, f, y, dy, dx, dw]);
      expect(tf.memory().numTensors).toBe(before);
    },
  );
});

describe('conv2d gradient kernels on wasm', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'wasm' });
  });

  it.each([false, true])(
    'sum over several chunks like over one (large batch; winograd: %s)',
    async (winograd) => {
      // Direct: 2 × 40 × 40 = 3,200 positions per image > the 4,096-position chunk over 2 images,
      // with 3·3·16 = 144 GEMM rows, so the filter gradient is summed chunk by chunk. Winograd:
      // 300 tiles of 4×4 outputs, over the 256 one call sums.
      await initBackend({ backend: 'wasm', winograd });
      const shape: [number, number, number, number] = [3, 40, 40, 16];
      const xv = values(
        shape.reduce((p, d) => p * d),
        4,
      );
      const x = tf.tensor4d(xv, shape);
      const dyv = values(3 * 40 * 40 * 8, 6);
      const dy = tf.tensor4d(dyv, [3, 40, 40, 8]);
      const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
        strides: 1,
        pad: 'same',
        dataFormat: 'NHWC',
        filterShape: [3, 3, 16, 8],
      } as never) as tf.Tensor;
      const g = {
        n: 3,
        h: 40,
        w: 40,
        ci: 16,
        co: 8,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        pt: 1,
        pl: 1,
        ho: 40,
        wo: 40,
      };
      const within = winograd ? 5e-5 : 1e-5;
      expect(relativeError(dw.dataSync(), conv2dFilterGrad64(g, xv, dyv))).toBeLessThan(within);
      tf.dispose([x, dy, dw]);
    },
  );

  it('compute the input gradient of a many-image RGB stem a group of images at a time', async () => {
    // 10 images of 224² through a 7×7/2 conv: 12,544 positions × 147 taps × 4 bytes = 7.4 MB of
    // columns per image, over the 64 MB budget, so the GEMM + col2im path runs in two groups.
    // tfjs-backend-cpu's own Conv2DBackpropInput is the reference here.
    const shape: [number, number, number, number] = [10, 224, 224, 3];
    const attrs = { strides: 2, pad: explicit(3, 3, 3, 3), dataFormat: 'NHWC', inputShape: shape };
    const run = async (backend: 'wasm' | 'cpu') => {
      await initBackend({ backend });
      const f = tf.tensor4d(values(7 * 7 * 3 * 16, 8), [7, 7, 3, 16]);
      const dy = tf.tensor4d(values(10 * 112 * 112 * 16, 9), [10, 112, 112, 16]);
      const dx = tf
        .engine()
        .runKernel('Conv2DBackpropInput', { dy, filter: f }, attrs as never) as tf.Tensor;
      const out = dx.dataSync().slice();
      tf.dispose([f, dy, dx]);
      return out;
    };
    const cpu = await run('cpu');
    const wasm = await run('wasm');
    expect(relativeError(wasm, cpu)).toBeLessThan(1e-5);
  });

  it('reject NCHW with an error naming the kernel and the format', () => {
    const x = tf.zeros([1, 3, 4, 4]);
    const dy = tf.zeros([1, 2, 4, 4]);
    expect(() =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
        strides: 1,
        pad: 'same',
        dataFormat: 'NCHW',
        filterShape: [3, 3, 3, 2],
      } as never),
    ).toThrow(/Conv2DBackpropFilter on wasm: expected dataFormat 'NHWC', found 'NCHW'/);
    tf.dispose([x, dy]);
  });
});
