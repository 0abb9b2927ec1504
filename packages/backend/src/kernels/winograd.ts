import type { TensorInfo } from '@tensorflow/tfjs-core';

import type { WasmContext } from '../wasm/wasm_context.js';
import type { ConvGeometry } from './conv2d.js';

/**
 * Floats of transformed patches and products one `winograd_conv` call keeps (512 KiB, in L2):
 * 256 tiles at 16 → 16 channels, 64 at 64 → 64, never fewer than 16.
 */
const floatsPerChunk = 1 << 17;
/** Tiles one `winograd_filter_grad` call sums over: the GEMM's depth block (GEMM_KC). */
const tilesPerGradChunk = 256;

let enabled = true;

/** Whether 3×3 stride-1 convolutions run by Winograd's algorithm (`registerTrainingKernels`). */
export function setWinograd(on: boolean): void {
  enabled = on;
}

/**
 * Whether a convolution runs by Winograd's F(2×2, 3×3) (Lavin and Gray, 2016): a 3×3 filter at
 * stride 1, input and output channels multiples of 4 and at least 8 (the kernels take 4 channels
 * at a time, and the GEMMs over fewer would run at half their speed). It multiplies 2.25× less
 * than the direct product; on the 2-core machine its convolutions ran 1.4–2× faster (backend
 * README). Results differ from the direct product's by rounding only.
 */
export function winogradApplies(g: ConvGeometry): boolean {
  return (
    enabled &&
    g.kh === 3 &&
    g.kw === 3 &&
    g.sh === 1 &&
    g.sw === 1 &&
    g.ci >= 8 &&
    g.co >= 8 &&
    g.ci % 4 === 0 &&
    g.co % 4 === 0
  );
}

/** Output tiles of 2×2 (half tiles past an odd edge) over the batch. */
function tileCount(g: ConvGeometry): number {
  return g.n * Math.ceil(g.ho / 2) * Math.ceil(g.wo / 2);
}

/**
 * The forward convolution into `out` [N, Ho, Wo, Co]: the filter transformed once, then a chunk
 * of tiles at a time, each chunk's patches transformed, its 16 GEMMs and its outputs transformed
 * back while they are in cache (`winograd_conv`).
 */
export function winogradConv2d(
  ctx: WasmContext,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  out: TensorInfo,
): TensorInfo {
  const { h, w, ci, co, ho, wo, pt, pl } = g;
  const k = ctx.k;
  const u = ctx.alloc([16 * ci * co]);
  const packed = ctx.alloc([k.winogradFilterFloats(ci, co)]);
  k.winogradFilter(ctx.ptr(filter), ctx.ptr(u), ctx.ptr(packed), ci, co);
  ctx.free(u);
  const tiles = tileCount(g);
  const fit = Math.floor(floatsPerChunk / (16 * (ci + co)) / 4) * 4;
  const chunk = Math.max(1, Math.min(tiles, Math.max(16, fit)));
  const scratch = ctx.alloc([k.winogradScratchFloats(chunk, ci, co)]);
  for (let t0 = 0; t0 < tiles; t0 += chunk) {
    const count = Math.min(chunk, tiles - t0);
    k.winogradConv(
      ctx.ptr(x),
      ctx.ptr(packed),
      ctx.ptr(out),
      h,
      w,
      ci,
      ho,
      wo,
      pt,
      pl,
      co,
      t0,
      count,
      ctx.ptr(scratch),
    );
  }
  ctx.free(scratch, packed);
  return out;
}

/**
 * The filter gradient into `dw` [3, 3, Ci, Co]: the gradient with respect to the transformed
 * filter summed over every tile, `tilesPerGradChunk` at a time (`winograd_filter_grad`), then
 * transformed back (`winograd_filter_grad_out`).
 */
export function winogradFilterGrad(
  ctx: WasmContext,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
  dw: TensorInfo,
): TensorInfo {
  const { h, w, ci, co, ho, wo, pt, pl } = g;
  const k = ctx.k;
  const du = ctx.alloc([16 * co * ci]);
  k.fillZero(ctx.ptr(du), 16 * co * ci);
  const tiles = tileCount(g);
  const chunk = Math.max(1, Math.min(tiles, tilesPerGradChunk));
  const scratch = ctx.alloc([k.winogradGradScratchFloats(chunk, ci, co)]);
  for (let t0 = 0; t0 < tiles; t0 += chunk) {
    const count = Math.min(chunk, tiles - t0);
    k.winogradFilterGrad(
      ctx.ptr(x),
      ctx.ptr(dy),
      ctx.ptr(du),
      h,
      w,
      ci,
      ho,
      wo,
      pt,
      pl,
      co,
      t0,
      count,
      ctx.ptr(scratch),
    );
  }
  const t = ctx.alloc([9 * co * ci]);
  k.winogradFilterGradOut(ctx.ptr(du), ctx.ptr(t), ctx.ptr(dw), ci, co);
  ctx.free(du, t, scratch);
  return dw;
}
