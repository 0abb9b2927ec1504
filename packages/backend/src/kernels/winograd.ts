import type { TensorInfo } from '@tensorflow/tfjs-core';

import type { WinogradTiles } from '../wasm/training_kernels.js';
import type { WasmContext } from '../wasm/wasm_context.js';
import type { ConvGeometry } from './conv2d.js';

/** Floats of transformed patches and products a call keeps in L2 (512 KiB). */
const floatsPerChunk = 1 << 17;
/** The most tiles a filter-gradient call sums over: the GEMM's depth block (GEMM_KC). */
const maxGradTiles = 256;

let enabled = true;

/** Whether 3×3 stride-1 convolutions run by Winograd's algorithm (`registerTrainingKernels`). */
export function setWinograd(on: boolean): void {
  enabled = on;
}

/**
 * Whether a convolution runs by Winograd's F(4×4, 3×3) (Lavin and Gray, 2016; `winograd_conv` in
 * csrc/): a 3×3 filter at stride 1, input and output channels multiples of 4 and at least 8 (the
 * kernels take 4 channels at a time, and GEMMs over fewer would run at half their speed).
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

/** 4×4 output tiles (partial ones past an edge) over the batch. */
function tileCount(g: ConvGeometry): number {
  return g.n * Math.ceil(g.ho / 4) * Math.ceil(g.wo / 4);
}

/**
 * Tiles per call: as many as fit `floatsPerChunk` (36 transformed patches and products per tile),
 * but at least Ci·Co / (Ci + Co), where the traffic of the tiles' matrices matches that of the
 * transformed filter (or its gradient) each call reads again, and at least 16.
 */
function chunkTiles(g: ConvGeometry, max: number): number {
  const fit = floatsPerChunk / (36 * (g.ci + g.co));
  const balance = (g.ci * g.co) / (g.ci + g.co);
  const tiles = Math.ceil(Math.max(16, fit, balance) / 4) * 4;
  return Math.max(1, Math.min(tileCount(g), max, tiles));
}

/** Runs a Winograd kernel over every tile of the convolution, `chunk` tiles a call. */
function overTiles(
  ctx: WasmContext,
  kernel: WinogradTiles,
  x: TensorInfo,
  b: TensorInfo,
  into: TensorInfo,
  g: ConvGeometry,
  chunk: number,
  scratch: TensorInfo,
): void {
  const { h, w, ci, co, ho, wo, pt, pl } = g;
  const [xAt, bAt, intoAt, scratchAt] = [ctx.ptr(x), ctx.ptr(b), ctx.ptr(into), ctx.ptr(scratch)];
  const tiles = tileCount(g);
  for (let t0 = 0; t0 < tiles; t0 += chunk) {
    const count = Math.min(chunk, tiles - t0);
    kernel(xAt, bAt, intoAt, h, w, ci, ho, wo, pt, pl, co, t0, count, scratchAt);
  }
}

/**
 * The forward convolution into `out` [N, Ho, Wo, Co]: the filter transformed once, then a chunk
 * of tiles at a time, each chunk's patches transformed, its 36 GEMMs, and its outputs
 * transformed back while they are in cache.
 */
export function winogradConv2d(
  ctx: WasmContext,
  x: TensorInfo,
  filter: TensorInfo,
  g: ConvGeometry,
  out: TensorInfo,
): TensorInfo {
  const { ci, co } = g;
  const k = ctx.k;
  const u = ctx.alloc([36 * ci * co]);
  const packed = ctx.alloc([k.winogradFilterFloats(ci, co)]);
  k.winogradFilter(ctx.ptr(filter), ctx.ptr(u), ctx.ptr(packed), ci, co);
  ctx.free(u);
  const chunk = chunkTiles(g, Infinity);
  const scratch = ctx.alloc([k.winogradScratchFloats(chunk, ci, co)]);
  overTiles(ctx, k.winogradConv, x, packed, out, g, chunk, scratch);
  ctx.free(scratch, packed);
  return out;
}

/**
 * The filter gradient into `dw` [3, 3, Ci, Co]: the gradient with respect to the transformed
 * filter summed over every tile, a chunk at a time (`winograd_filter_grad`), then transformed
 * back (`winograd_filter_grad_out`).
 */
export function winogradFilterGrad(
  ctx: WasmContext,
  x: TensorInfo,
  dy: TensorInfo,
  g: ConvGeometry,
  dw: TensorInfo,
): TensorInfo {
  const { ci, co } = g;
  const k = ctx.k;
  const du = ctx.alloc([36 * co * ci]);
  k.fillZero(ctx.ptr(du), 36 * co * ci);
  const chunk = chunkTiles(g, maxGradTiles);
  const scratch = ctx.alloc([k.winogradGradScratchFloats(chunk, ci, co)]);
  overTiles(ctx, k.winogradFilterGrad, x, dy, du, g, chunk, scratch);
  const t = ctx.alloc([9 * co * ci]);
  k.winogradFilterGradOut(ctx.ptr(du), ctx.ptr(t), ctx.ptr(dw), ci, co);
  ctx.free(du, t, scratch);
  return dw;
}
