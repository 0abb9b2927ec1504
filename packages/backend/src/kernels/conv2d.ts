import { backend_util, type Conv2DAttrs, type TensorInfo } from '@tensorflow/tfjs-core';

import type { WasmContext } from '../wasm/wasm_context.js';
import { winogradApplies, winogradConv2d } from './winograd.js';

/**
 * Floats of im2col columns built at a time: about 2 MiB, so a chunk is still in cache when the
 * GEMM reads it, and the columns of a whole batch (115 MB for ResNet-50's first 3×3 at batch
 * 16) are never allocated.
 */
const columnFloatsPerChunk = 1 << 19;

/**
 * From this many input channels the GEMM reads each window's pixels in place (`conv_gemm`), 1–6%
 * faster than copying them into im2col rows first on ResNet-50's and ResNet-8's convolutions;
 * below it (an RGB stem) a window's runs of C floats are too short and the im2col rows win.
 */
const minChannelsInPlace = 8;

/** A convolution's geometry, NHWC input [n, h, w, ci] and HWIO filter [kh, kw, ci, co]. */
export interface ConvGeometry {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  kh: number;
  kw: number;
  ho: number;
  wo: number;
  sh: number;
  sw: number;
  /** Padding above and left of the input; below and right follow from ho and wo. */
  pt: number;
  pl: number;
}

/**
 * A 2-D convolution (no dilation) as the package's own GEMM: `y[(n, oh, ow), co] =
 * Σ_(i, j, ci) x[n, oh·sh + i − pt, ow·sw + j − pl, ci] · w[i, j, ci, co]`. A 1×1 stride-1
 * convolution is one GEMM on x itself; a 3×3 stride-1 one runs by Winograd's algorithm where
 * `winogradApplies`; any other runs a chunk of output positions at a time against
 * the filter packed once, its tiles reading x's pixels in place (`conv_gemm`), or, with fewer than
 * `minChannelsInPlace` input channels, im2col rows copied out first.
 */
export function conv2dGemm(ctx: WasmContext, x: TensorInfo, filter: TensorInfo, g: ConvGeometry) {
  const { n, h, w, ci, co, kh, kw, ho, wo, sh, sw, pt, pl } = g;
  const out = ctx.alloc([n, ho, wo, co]);
  const positions = n * ho * wo;
  const depth = kh * kw * ci;
  const weights = { ptr: ctx.ptr(filter), kStride: co, nStride: 1 };
  if (
    kh === 1 &&
    kw === 1 &&
    sh === 1 &&
    sw === 1 &&
    pt === 0 &&
    pl === 0 &&
    ho === h &&
    wo === w
  ) {
    ctx.gemm(
      { ptr: ctx.ptr(x), rowStride: ci },
      weights,
      { ptr: ctx.ptr(out), rowStride: co },
      positions,
      co,
      ci,
      false,
    );
    return out;
  }
  if (winogradApplies(g)) return winogradConv2d(ctx, x, filter, g, out);
  const packed = ctx.packB(weights, depth, co);
  const rows = Math.min(positions, Math.max(4, Math.floor(columnFloatsPerChunk / depth / 4) * 4));
  if (ci >= minChannelsInPlace) {
    const scratch = ctx.alloc([ctx.k.convGemmScratchFloats(rows, kh * kw, ci)]);
    for (let r0 = 0; r0 < positions; r0 += rows) {
      const m = Math.min(rows, positions - r0);
      ctx.k.convGemm(
        ctx.ptr(x),
        ctx.ptr(packed),
        ctx.ptr(out) + r0 * co * 4,
        h,
        w,
        ci,
        ho,
        wo,
        kh,
        kw,
        sh,
        sw,
        pt,
        pl,
        co,
        r0,
        m,
        ctx.ptr(scratch),
      );
    }
    ctx.free(scratch, packed);
    return out;
  }
  const cols = ctx.alloc([rows, depth]);
  for (let r0 = 0; r0 < positions; r0 += rows) {
    const m = Math.min(rows, positions - r0);
    ctx.k.im2col(ctx.ptr(x), ctx.ptr(cols), h, w, ci, ho, wo, kh, kw, sh, sw, pt, pl, r0, m);
    ctx.gemmPacked(
      { ptr: ctx.ptr(cols), rowStride: depth },
      packed,
      { ptr: ctx.ptr(out) + r0 * co * 4, rowStride: co },
      m,
      co,
      depth,
      false,
    );
  }
  ctx.free(cols, packed);
  return out;
}

/**
 * tfjs's Conv2D kernel on wasm: `conv2dGemm` for float32 NHWC without dilation, else
 * tfjs-backend-wasm's own (XNNPACK).
 */
export function conv2d(ctx: WasmContext, x: TensorInfo, filter: TensorInfo, attrs: Conv2DAttrs) {
  const dilated = [attrs.dilations].flat().some((d) => d !== 1);
  if (
    dilated ||
    attrs.dataFormat !== 'NHWC' ||
    x.dtype !== 'float32' ||
    filter.dtype !== 'float32'
  ) {
    return ctx.conv2dXnnpack(x, filter, attrs);
  }
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  return conv2dGemm(ctx, x, filter, {
    n: info.batchSize,
    h: info.inHeight,
    w: info.inWidth,
    ci: info.inChannels,
    co: info.outChannels,
    kh: info.filterHeight,
    kw: info.filterWidth,
    ho: info.outHeight,
    wo: info.outWidth,
    sh: info.strideHeight,
    sw: info.strideWidth,
    pt: info.padInfo.top,
    pl: info.padInfo.left,
  });
}
