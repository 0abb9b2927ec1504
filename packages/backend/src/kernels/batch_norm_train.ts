import type { TensorInfo } from '@tensorflow/tfjs-core';

import type { WasmContext } from '../wasm/wasm_context.js';

/** x viewed as [rows, channels]: batch norm's statistics are per channel, over all other axes. */
function rowsAndChannels(kernel: string, x: TensorInfo, gamma: TensorInfo): [number, number] {
  const c = x.shape[x.shape.length - 1] ?? 0;
  if (x.dtype !== 'float32' || x.shape.length < 2) {
    throw new Error(
      `${kernel}: expected x of dtype float32 and rank ≥ 2, found ${x.dtype} [${x.shape}]`,
    );
  }
  if (gamma.shape.length !== 1 || gamma.shape[0] !== c) {
    throw new Error(
      `${kernel}: expected gamma and beta of shape [${c}] (x's channels), found [${gamma.shape}]`,
    );
  }
  return [x.shape.reduce((p, d) => p * d, 1) / Math.max(c, 1), c];
}

/** The running statistics a batch norm kernel updates, and the new batch's weight in them. */
export interface RunningInfo {
  mean: TensorInfo;
  variance: TensorInfo;
  momentum: number;
}

/**
 * y, the batch's mean and variance, and with `running` the running statistics after this batch
 * (new tensors, PyTorch's update: see bn_running).
 */
export function batchNormTrainWasm(
  ctx: WasmContext,
  x: TensorInfo,
  gamma: TensorInfo,
  beta: TensorInfo,
  epsilon: number,
  relu = false,
  running?: RunningInfo,
): TensorInfo[] {
  const kernel = relu ? 'ThorBatchNormReluTrain' : 'ThorBatchNormTrain';
  const [m, c] = rowsAndChannels(kernel, x, gamma);
  const y = ctx.alloc(x.shape);
  const mean = ctx.alloc([c]);
  const variance = ctx.alloc([c]);
  const scratch = ctx.alloc([9 * c]);
  ctx.k.bnTrain(
    ctx.ptr(x),
    ctx.ptr(y),
    m,
    c,
    ctx.ptr(gamma),
    ctx.ptr(beta),
    epsilon,
    ctx.ptr(mean),
    ctx.ptr(variance),
    ctx.ptr(scratch),
    relu ? 1 : 0,
  );
  ctx.free(scratch);
  if (running === undefined) return [y, mean, variance];
  for (const [name, t] of [
    ['runningMean', running.mean],
    ['runningVariance', running.variance],
  ] as const) {
    if (t.dtype !== 'float32' || t.shape.length !== 1 || t.shape[0] !== c) {
      throw new Error(
        `${kernel}: expected ${name} of dtype float32 and shape [${c}] (x's channels), found ${t.dtype} [${t.shape}]`,
      );
    }
  }
  const newMean = ctx.alloc([c]);
  const newVariance = ctx.alloc([c]);
  ctx.k.bnRunning(
    ctx.ptr(mean),
    ctx.ptr(variance),
    ctx.ptr(running.mean),
    ctx.ptr(running.variance),
    c,
    m,
    running.momentum,
    ctx.ptr(newMean),
    ctx.ptr(newVariance),
  );
  return [y, mean, variance, newMean, newVariance];
}

export function batchNormTrainGradWasm(
  ctx: WasmContext,
  dy: TensorInfo,
  x: TensorInfo,
  mean: TensorInfo,
  variance: TensorInfo,
  gamma: TensorInfo,
  epsilon: number,
  /** The forward's output when it had the ReLU: dy passes where it is positive. */
  y?: TensorInfo,
): TensorInfo[] {
  const [m, c] = rowsAndChannels('ThorBatchNormTrainGrad', x, gamma);
  const dx = ctx.alloc(x.shape);
  const dgamma = ctx.alloc([c]);
  const dbeta = ctx.alloc([c]);
  const scratch = ctx.alloc([9 * c]);
  ctx.k.bnTrainGrad(
    ctx.ptr(dy),
    ctx.ptr(x),
    m,
    c,
    ctx.ptr(mean),
    ctx.ptr(variance),
    ctx.ptr(gamma),
    epsilon,
    ctx.ptr(dx),
    ctx.ptr(dgamma),
    ctx.ptr(dbeta),
    ctx.ptr(scratch),
    y === undefined ? 0 : ctx.ptr(y),
  );
  ctx.free(scratch);
  return [dx, dgamma, dbeta];
}

/**
 * A kernel of two float32 tensors of one shape into a third of that shape: `reluGrad` (dy where
 * x > 0) and `addRelu` (max(a + b, 0)).
 */
export function elementwise2Wasm(
  ctx: WasmContext,
  kernel: 'reluGrad' | 'addRelu',
  a: TensorInfo,
  b: TensorInfo,
): TensorInfo {
  const out = ctx.alloc(b.shape);
  ctx.k[kernel](
    ctx.ptr(a),
    ctx.ptr(b),
    ctx.ptr(out),
    b.shape.reduce((p, d) => p * d, 1),
  );
  return out;
}
