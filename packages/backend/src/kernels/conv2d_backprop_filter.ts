import type { Conv2DBackpropFilterAttrs, TensorInfo } from '@tensorflow/tfjs-core';

import type { WasmContext } from '../wasm/wasm_context.js';
import { gradientConvInfo } from './conv_info.js';
import { winogradApplies, winogradFilterGrad } from './winograd.js';

/**
 * Output positions summed per GEMM call. The filter gradient's GEMM sums over every output
 * position (N·Ho·Wo: 50,176 at 56² and batch 16); a chunk at a time, the transposed im2col
 * columns of the whole batch (kh·kw·Ci rows of that length) are never allocated at once.
 */
const positionsPerChunk = 4096;
/**
 * Fewer GEMM rows (kh·kw·Ci) than this and the columns of the whole batch are built at once, for
 * one GEMM call (in ResNet-50, the 1×1 convolutions of 64 channels: 64 × 50,176 floats, 12.8 MB at
 * batch 16).
 */
const minRowsToChunk = 128;

/**
 * The filter gradient reads windows in place (`conv_filter_grad`) for kernels larger than 1×1 with
 * Ci a multiple of 4 and at most this many filter floats (256 KiB): every block of 256 output
 * positions adds into the whole filter gradient, which must stay in cache. There it ran 1.1–1.45×
 * the transposed im2col's speed (ResNet-8's 3×3s, ResNet-50's at 56²); on larger filters, 0.67–1.0×.
 */
const maxInPlaceFilterFloats = 1 << 16;
/**
 * 1×1 kernels read in place up to this many filter floats (ResNet-50's 64 → 64, ResNet-8's
 * shortcuts), where transposing x costs about as much as the product: at 64 → 64, 1.16× the
 * transposed im2col's speed with relaxed SIMD and 1.07× without; from 64 → 256 up, in place was
 * slower.
 */
const maxInPlacePointwiseFloats = 1 << 12;

interface Chunk {
  n0: number;
  images: number;
  oh0: number;
  oh1: number;
}

/** Whole images at a time when they are small, else runs of output rows of one image. */
function chunks(n: number, ho: number, wo: number, rows: number): Chunk[] {
  const out: Chunk[] = [];
  if (rows < minRowsToChunk || n * ho * wo <= positionsPerChunk) {
    out.push({ n0: 0, images: n, oh0: 0, oh1: ho });
  } else if (ho * wo < positionsPerChunk) {
    const g = Math.max(1, Math.floor(positionsPerChunk / (ho * wo)));
    for (let n0 = 0; n0 < n; n0 += g)
      out.push({ n0, images: Math.min(g, n - n0), oh0: 0, oh1: ho });
  } else {
    const rows = Math.max(1, Math.floor(positionsPerChunk / wo));
    for (let n0 = 0; n0 < n; n0++) {
      for (let oh0 = 0; oh0 < ho; oh0 += rows) {
        out.push({ n0, images: 1, oh0, oh1: Math.min(ho, oh0 + rows) });
      }
    }
  }
  return out;
}

/**
 * The filter gradient of a 2-D convolution: by Winograd's algorithm where `winogradApplies`, else
 * its windows read in place (see
 * `maxInPlaceFilterFloats`), or as the package's GEMM (`WasmContext.gemm`):
 * `dw[(i, j, ci), co] = Σ_(n, oh, ow) x[n, oh·s + i − pt, ow·s + j − pl, ci] · dy[n, oh, ow, co]`,
 * the transposed im2col of x (built by `im2col_t`, padding read as zeros) times dy viewed as
 * [N·Ho·Wo, Co], accumulated into dw a chunk of output positions at a time. Rows come out in the filter's own
 * [kh, kw, Ci, Co] order.
 */
export function conv2dBackpropFilter(
  ctx: WasmContext,
  x: TensorInfo,
  dy: TensorInfo,
  attrs: Conv2DBackpropFilterAttrs,
): TensorInfo {
  const info = gradientConvInfo('Conv2DBackpropFilter', x.shape, attrs.filterShape, attrs, {
    x,
    dy,
  });
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  const { outHeight: ho, outWidth: wo, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw, padInfo } = info;
  const k = ctx.k;
  const dw = ctx.alloc([kh, kw, ci, co]);
  const floats = kh * kw * ci * co;
  const geometry = { n, h, w, ci, co, kh, kw, ho, wo, sh, sw, pt: padInfo.top, pl: padInfo.left };
  if (winogradApplies(geometry)) return winogradFilterGrad(ctx, x, dy, geometry, dw);
  const inPlace =
    kh * kw > 1 ? floats <= maxInPlaceFilterFloats : floats <= maxInPlacePointwiseFloats;
  if (ci % 4 === 0 && inPlace) {
    k.fillZero(ctx.ptr(dw), floats);
    const scratch = ctx.alloc([k.convFilterGradScratchFloats()]);
    k.convFilterGrad(
      ctx.ptr(x),
      ctx.ptr(dy),
      ctx.ptr(dw),
      h,
      w,
      ci,
      ho,
      wo,
      kh,
      kw,
      sh,
      sw,
      padInfo.top,
      padInfo.left,
      co,
      n * ho * wo,
      ctx.ptr(scratch),
    );
    ctx.free(scratch);
    return dw;
  }
  const parts = chunks(n, ho, wo, kh * kw * ci);
  for (const c of parts) {
    const positions = c.images * (c.oh1 - c.oh0) * wo;
    const cols = ctx.alloc([kh * kw * ci, positions]);
    const xAt = ctx.ptr(x) + c.n0 * h * w * ci * 4;
    k.im2colT(
      xAt,
      ctx.ptr(cols),
      c.images,
      h,
      w,
      ci,
      c.oh0,
      c.oh1,
      wo,
      sh,
      sw,
      kw,
      padInfo.top,
      padInfo.left,
      0,
      kh * kw,
    );
    const rowsOfDy = ctx.ptr(dy) + (c.n0 * ho + c.oh0) * wo * co * 4;
    ctx.gemm(
      { ptr: ctx.ptr(cols), rowStride: positions },
      { ptr: rowsOfDy, kStride: co, nStride: 1 },
      { ptr: ctx.ptr(dw), rowStride: co },
      kh * kw * ci,
      co,
      positions,
      c !== parts[0],
    );
    ctx.free(cols);
  }
  // No output positions (an empty batch): the gradient is zero.
  if (n * ho * wo === 0) k.fillZero(ctx.ptr(dw), floats);
  return dw;
}
