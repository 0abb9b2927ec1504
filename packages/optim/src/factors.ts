import {
  matMul,
  mul,
  reshape,
  tensor2d,
  tensor3d,
  tidy,
  type Tensor2D,
  type Tensor3D,
  type Tensor4D,
} from '@tensorflow/tfjs-core';

import type { LayerTap } from '@thor-ts/model';

import { factorBlocks, type Im2colGeometry } from './factor_kernel.js';

/**
 * Rows of a factor's "X": the im2col of a convolution's input, or a linear layer's input. The
 * columns follow HWIO kernels: (i, j, cin) for tap (i, j); padding reads as zeros.
 */
export function factorRows(src: LayerTap): Tensor2D {
  if (src.geometry.kind === 'linear') return src.input as Tensor2D;
  const x = src.input as Tensor4D;
  const [kh, kw] = src.geometry.kernel ?? [1, 1];
  const s = src.geometry.stride ?? 1;
  const [pt, pb, pl, pr] = src.geometry.padding ?? [0, 0, 0, 0];
  const [n, h, w, c] = x.shape;
  if (kh * kw === 1 && s === 1 && pt + pb + pl + pr === 0) return reshape(x, [n * h * w, c]);
  const ho = Math.floor((h + pt + pb - kh) / s) + 1;
  const wo = Math.floor((w + pl + pr - kw) / s) + 1;
  return tensor2d(im2col(x.dataSync() as Float32Array, [n, h, w, c], kh, kw, s, pt, pl, ho, wo), [
    n * ho * wo,
    kh * kw * c,
  ]);
}

/**
 * im2col in plain loops: one contiguous copy of `c` channels per (position, tap), zeros where the
 * tap falls in the padding. (tfjs's stridedSlice + concat does the same ~10–40× slower on wasm.)
 */
function im2col(
  xs: Float32Array,
  [n, h, w, c]: [number, number, number, number],
  kh: number,
  kw: number,
  s: number,
  pt: number,
  pl: number,
  ho: number,
  wo: number,
): Float32Array {
  const out = new Float32Array(n * ho * wo * kh * kw * c);
  let o = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        for (let i = 0; i < kh; i++) {
          const iy = oy * s + i - pt;
          for (let j = 0; j < kw; j++, o += c) {
            const ix = ox * s + j - pl;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const from = ((b * h + iy) * w + ix) * c;
            if (c >= 16) out.set(xs.subarray(from, from + c), o);
            else for (let q = 0; q < c; q++) out[o + q] = xs[from + q] as number;
          }
        }
      }
    }
  }
  return out;
}

/** m rows of k columns as the kernel reads them: a 1×1 convolution over [m, 1, 1, k]. */
function rowsGeometry(m: number, k: number): Im2colGeometry {
  return { shape: [m, 1, 1, k], kernel: [1, 1], stride: 1, padding: [0, 0], out: [1, 1] };
}

/** The im2col geometry of a layer's input (a linear layer's rows as a 1×1 convolution). */
function im2colGeometry(src: LayerTap): Im2colGeometry {
  if (src.geometry.kind === 'linear') {
    const [m, k] = src.input.shape as [number, number];
    return rowsGeometry(m, k);
  }
  const [n, h, w, c] = src.input.shape as [number, number, number, number];
  const [kh, kw] = src.geometry.kernel ?? [1, 1];
  const s = src.geometry.stride ?? 1;
  const [pt, pb, pl, pr] = src.geometry.padding ?? [0, 0, 0, 0];
  return {
    shape: [n, h, w, c],
    kernel: [kh, kw],
    stride: s,
    padding: [pt, pl],
    out: [Math.floor((h + pt + pb - kh) / s) + 1, Math.floor((w + pl + pr - kw) / s) + 1],
  };
}

/**
 * A layer's factor A as diagonal blocks: XᵀX / divisor over its im2col rows X, [nb, block,
 * block]. The wasm kernel reads the input as it is (X is never built); without it, the rows are
 * built (`factorRows`) and multiplied by tfjs (`diagonalBlocks`).
 */
export function inputFactorBlocks(src: LayerTap, block: number, divisor: number): Tensor3D {
  const geometry = im2colGeometry(src);
  const [kh, kw] = geometry.kernel;
  const cols = kh * kw * geometry.shape[3];
  const out = factorBlocks(
    src.input.dataSync() as Float32Array,
    geometry,
    block,
    Math.fround(1 / divisor),
  );
  if (out !== undefined) return tensor3d(out, [Math.ceil(cols / block), block, block]);
  const rows = factorRows(src);
  const blocks = diagonalBlocks(rows, block, divisor);
  if (rows !== src.input) rows.dispose();
  return blocks;
}

/**
 * A layer's factor G as diagonal blocks: (s·dY)ᵀ(s·dY) / divisor over its output-gradient rows
 * dY, s = `batchScale` ([nb, block, block]): dYᵀdY / (divisor / s²), so the rows are not scaled.
 */
export function gradientFactorBlocks(
  src: LayerTap,
  block: number,
  divisor: number,
  batchScale: number,
): Tensor3D {
  const rows = outputGradRows(src);
  const blocks = diagonalBlocks(rows, block, divisor / (batchScale * batchScale));
  rows.dispose();
  return blocks;
}

/** The columns of a layer's factors: A's kh·kw·Cin (Cin for a linear layer), G's Cout. */
export function factorColumns(src: LayerTap): { a: number; g: number } {
  const { shape, kernel } = im2colGeometry(src);
  const g = src.outputGrad ?? src.input;
  return { a: kernel[0] * kernel[1] * shape[3], g: g.shape[g.shape.length - 1] as number };
}

/** Output positions per sample (T): Ho·Wo for a convolution, 1 for a linear layer. */
export function positionsPerSample(src: LayerTap): number {
  if (src.geometry.kind === 'linear') return 1;
  const g = src.outputGrad ?? src.input;
  return (g.shape[1] as number) * (g.shape[2] as number);
}

/** The layer's output gradient as rows [N·T, Cout], rescaled per sample (× batch size). */
export function gradientRows(src: LayerTap, batchScale: number): Tensor2D {
  return tidy(() => mul(outputGradRows(src), batchScale));
}

/** The layer's output gradient as rows [N·T, Cout] (a reshape: no copy). */
function outputGradRows(src: LayerTap): Tensor2D {
  if (src.outputGrad === undefined) {
    throw new Error(
      `THOR: layer '${src.layer}' has no output gradient: run the backward pass with its tap`,
    );
  }
  const g = src.outputGrad;
  const cout = g.shape[g.shape.length - 1] as number;
  return reshape(g, [g.size / cout, cout]);
}

/**
 * Rows summed per product in `diagonalBlocks`. A product that sums over all N·T rows (50,176 at
 * 56² and batch 16) walks them from memory for every output tile; chunks this long stay in cache.
 */
const rowsPerChunk = 4096;

/**
 * The diagonal blocks of rowsᵀ·rows / divisor, blocks of `block` columns (the last padded with
 * zeros): [nb, block, block]. Only those blocks are computed, never the full product, by the wasm
 * kernel where it runs. Without it, each block's columns are copied out contiguously, a chunk of
 * rows at a time, and multiplied by tfjs at their own width (a last block narrower than `block`
 * is padded only after the product); the chunks' sums add up in float64.
 */
export function diagonalBlocks(rows: Tensor2D, block: number, divisor: number): Tensor3D {
  const [m, k] = rows.shape;
  const nb = Math.ceil(k / block);
  const all = rows.dataSync() as Float32Array;
  const byKernel = factorBlocks(all, rowsGeometry(m, k), block, Math.fround(1 / divisor));
  if (byKernel !== undefined) return tensor3d(byKernel, [nb, block, block]);
  const out = new Float32Array(nb * block * block);
  const chunk = Math.min(m, rowsPerChunk);
  const sum = new Float64Array(block * block);
  const buffer = new Float32Array(chunk * Math.min(block, k));
  for (let kb = 0; kb < nb; kb++) {
    const c0 = kb * block;
    const width = Math.min(block, k - c0);
    sum.fill(0, 0, width * width);
    for (let r0 = 0; r0 < m; r0 += chunk) {
      const r1 = Math.min(m, r0 + chunk);
      let cols: Float32Array;
      if (width === k) cols = all.subarray(r0 * k, r1 * k);
      else {
        cols = buffer.subarray(0, (r1 - r0) * width);
        for (let r = r0; r < r1; r++) {
          cols.set(all.subarray(r * k + c0, r * k + c0 + width), (r - r0) * width);
        }
      }
      const product = tidy(() => {
        const x = tensor2d(cols, [r1 - r0, width]);
        return matMul(x, x, true, false);
      });
      const p = product.dataSync();
      product.dispose();
      for (let i = 0; i < width * width; i++) sum[i] = (sum[i] as number) + (p[i] as number);
    }
    // × (1/divisor) in float32, as a tfjs mul would: one chunk gives the same bits as before.
    const scale = Math.fround(1 / divisor);
    const at = kb * block * block;
    for (let i = 0; i < width; i++) {
      for (let j = 0; j < width; j++) {
        out[at + i * block + j] = Math.fround(sum[i * width + j] as number) * scale;
      }
    }
  }
  return tensor3d(out, [nb, block, block]);
}
