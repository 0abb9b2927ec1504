import { backend_util, type MaxPoolGradAttrs, type TensorInfo } from '@tensorflow/tfjs-core';

import type { WasmContext } from '../wasm/wasm_context.js';

/** MaxPoolGrad on wasm in one pass over the input (tfjs-backend-wasm's takes ~20× longer). */
export function maxPoolGrad(
  ctx: WasmContext,
  dy: TensorInfo,
  input: TensorInfo,
  attrs: MaxPoolGradAttrs,
): TensorInfo {
  if (input.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(
      `MaxPoolGrad on wasm: expected float32 tensors, found ${input.dtype} and ${dy.dtype}`,
    );
  }
  const info = backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const {
    batchSize: n,
    inHeight: h,
    inWidth: w,
    inChannels: c,
    outHeight: ho,
    outWidth: wo,
  } = info;
  const dx = ctx.alloc(input.shape);
  const scratch = ctx.alloc([2 * c]);
  ctx.k.maxPoolGrad(
    ctx.ptr(input),
    ctx.ptr(dy),
    ctx.ptr(dx),
    n,
    h,
    w,
    c,
    ho,
    wo,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
    ctx.ptr(scratch),
  );
  ctx.free(scratch);
  return dx;
}
