import type { Conv2DBackpropFilterAttrs, TensorInfo } from '@tensorflow/tfjs-core';

import type { WasmContext } from '../wasm/wasm_context.js';
import { gradientConvInfo } from './conv_info.js';

/** Largest transposed-im2col buffer built at once; bigger ones are done a group of taps at a time. */
const maxColumnBytes = 256 * 1024 * 1024;

/**
 * The filter gradient of a 2-D convolution as one GEMM in XNNPACK:
 * `dw[(i, j, ci), co] = Σ_(n, oh, ow) x[n, oh·s + i − pt, ow·s + j − pl, ci] · dy[n, oh, ow, co]`,
 * the transposed im2col of x (built by `im2col_t`, padding read as zeros) times dy viewed as
 * [N·Ho·Wo, Co]. Its rows come out in the filter's own [kh, kw, Ci, Co] order.
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
  const m = n * ho * wo;
  const taps = kh * kw;
  const dy2 = ctx.view(dy, [m, co]);
  const group = Math.max(1, Math.min(taps, Math.floor(maxColumnBytes / (ci * m * 4))));
  const columns = (t0: number, t1: number) => {
    const cols = ctx.alloc([(t1 - t0) * ci, m]);
    ctx.k.im2colT(ctx.ptr(x), ctx.ptr(cols), n, h, w, ci, ho, wo, sh, sw, kw, padInfo.top, padInfo.left, t0, t1);
    return cols;
  };
  if (group === taps) {
    const cols = columns(0, taps);
    const dw = ctx.matmul(cols, dy2);
    ctx.free(cols);
    return ctx.view(dw, [kh, kw, ci, co]);
  }
  const dw = ctx.alloc([kh, kw, ci, co]);
  for (let t0 = 0; t0 < taps; t0 += group) {
    const t1 = Math.min(taps, t0 + group);
    const cols = columns(t0, t1);
    const part = ctx.matmul(cols, dy2);
    ctx.k.copyF32(ctx.ptr(part), ctx.ptr(dw) + t0 * ci * co * 4, (t1 - t0) * ci * co);
    ctx.free(cols, part);
  }
  return dw;
}
