import type { Conv2DBackpropInputAttrs, TensorInfo } from '@tensorflow/tfjs-core';

import type { WasmContext } from '../wasm/wasm_context.js';
import { axisPhases } from './conv_phases.js';
import { gradientConvInfo } from './conv_info.js';

/**
 * At most this many input channels and the input gradient is one GEMM and a col2im instead: the
 * phase convolutions would have as few output channels, which XNNPACK computes at a third of its
 * speed (the 7×7 stem on RGB).
 */
const maxChannelsForColumns = 8;
/** Largest column buffer of the GEMM path; bigger batches go a group of images at a time. */
const maxColumnBytes = 64 * 1024 * 1024;

/**
 * The input gradient of a 2-D convolution as stride-1 forward convolutions in XNNPACK: one with
 * the flipped, transposed filter when the stride is 1, else one per phase of the stride
 * (see `axisPhases`), scattered into place. With few input channels, a GEMM and a col2im.
 */
export function conv2dBackpropInput(
  ctx: WasmContext,
  dy: TensorInfo,
  filter: TensorInfo,
  attrs: Conv2DBackpropInputAttrs,
): TensorInfo {
  const info = gradientConvInfo('Conv2DBackpropInput', attrs.inputShape, filter.shape, attrs, {
    dy,
    filter,
  });
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  const { outHeight: ho, outWidth: wo, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw, padInfo } = info;
  if (ci <= maxChannelsForColumns) return viaColumns(ctx, dy, filter, info);
  const rows = axisPhases(h, ho, kh, sh, padInfo.top);
  const cols = axisPhases(w, wo, kw, sw, padInfo.left);
  const k = ctx.k;

  let dx: TensorInfo | undefined;
  const someEmpty = rows.some((p) => p.taps === 0) || cols.some((p) => p.taps === 0);
  for (const pr of rows) {
    for (const pc of cols) {
      if (pr.taps === 0 || pc.taps === 0) continue;
      const f = ctx.alloc([pr.taps, pc.taps, co, ci]);
      k.filterPhase(
        ctx.ptr(filter),
        ctx.ptr(f),
        kw,
        ci,
        co,
        pr.i0,
        pr.taps,
        pc.i0,
        pc.taps,
        sh,
        sw,
      );
      let src = dy;
      const cropped = pr.cropBegin > 0 || pr.cropEnd < ho || pc.cropBegin > 0 || pc.cropEnd < wo;
      if (cropped) {
        const hh = pr.cropEnd - pr.cropBegin;
        const ww = pc.cropEnd - pc.cropBegin;
        src = ctx.alloc([n, hh, ww, co]);
        k.cropNhwc(ctx.ptr(dy), ctx.ptr(src), n, ho, wo, co, pr.cropBegin, pc.cropBegin, hh, ww);
      }
      const phase = ctx.conv2d(src, f, [pr.padBefore, pr.padAfter, pc.padBefore, pc.padAfter]);
      ctx.free(f);
      if (cropped) ctx.free(src);
      if (sh === 1 && sw === 1) return phase;
      if (dx === undefined) {
        dx = ctx.alloc([n, h, w, ci]);
        if (someEmpty) k.fillZero(ctx.ptr(dx), n * h * w * ci);
      }
      k.scatterPhase(
        ctx.ptr(phase),
        ctx.ptr(dx),
        n,
        pr.length,
        pc.length,
        ci,
        h,
        w,
        sh,
        sw,
        pr.r,
        pc.r,
      );
      ctx.free(phase);
    }
  }
  if (dx === undefined) {
    // No tap reaches any input row (a filter smaller than its stride on every phase).
    dx = ctx.alloc([n, h, w, ci]);
    k.fillZero(ctx.ptr(dx), n * h * w * ci);
  }
  return dx;
}

/** dcols[N·Ho·Wo, kh·kw·Ci] = dy[N·Ho·Wo, Co] · Wᵀ, then added into place by col2im. */
function viaColumns(
  ctx: WasmContext,
  dy: TensorInfo,
  filter: TensorInfo,
  info: ReturnType<typeof gradientConvInfo>,
): TensorInfo {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co } = info;
  const { outHeight: ho, outWidth: wo, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw, padInfo } = info;
  const k = ctx.k;
  const taps = kh * kw * ci;
  const wT = ctx.alloc([co, taps]);
  k.transposeBatched(ctx.ptr(filter), ctx.ptr(wT), 1, taps, co);
  const dx = ctx.alloc([n, h, w, ci]);
  k.fillZero(ctx.ptr(dx), n * h * w * ci);
  const perImage = ho * wo;
  const group = Math.max(1, Math.min(n, Math.floor(maxColumnBytes / (perImage * taps * 4))));
  for (let n0 = 0; n0 < n; n0 += group) {
    const images = Math.min(group, n - n0);
    let dyPart = ctx.view(dy, [images * perImage, co]);
    if (images < n) {
      dyPart = ctx.alloc([images * perImage, co]);
      k.copyF32(ctx.ptr(dy) + n0 * perImage * co * 4, ctx.ptr(dyPart), images * perImage * co);
    }
    const cols = ctx.matmul(dyPart, wT);
    if (images < n) ctx.free(dyPart);
    const dxAt = ctx.ptr(dx) + n0 * h * w * ci * 4;
    k.col2imAdd(
      ctx.ptr(cols),
      dxAt,
      images,
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
    );
    ctx.free(cols);
  }
  ctx.free(wT);
  return dx;
}
