import {
  add,
  batchNorm,
  cast,
  relu,
  engine,
  getBackend,
  getKernel,
  moments,
  mul,
  step,
  tidy,
  type GradConfig,
  type Tensor,
  type Tensor1D,
} from '@tensorflow/tfjs-core';

/** Kernel names of the fused training ops (registered on wasm by `registerTrainingKernels`). */
export const BatchNormTrain = 'ThorBatchNormTrain';
export const BatchNormReluTrain = 'ThorBatchNormReluTrain';
export const BatchNormTrainGrad = 'ThorBatchNormTrainGrad';
export const ReluGrad = 'ThorReluGrad';

export interface BatchNormTrainResult<T extends Tensor> {
  /** γ · (x − mean) / √(variance + ε) + β. */
  y: T;
  /** Per-channel mean and biased variance of this batch (for the running statistics). */
  mean: Tensor1D;
  variance: Tensor1D;
  /** With `running` given: the running statistics after this batch, new tensors. */
  running?: { mean: Tensor1D; variance: Tensor1D };
}

/**
 * PyTorch's running statistics of a batch norm, to update after the batch as `F.batch_norm` does
 * in training: new = (1 − momentum) · running + momentum · batch's, the batch's variance unbiased
 * (n / (n − 1), n the values per channel).
 */
export interface RunningStats {
  mean: Tensor1D;
  variance: Tensor1D;
  /** The new batch's weight, in [0, 1] (torchvision's 0.1). */
  momentum: number;
}

/** The running statistics after a batch, with tfjs's ops (backends without the fused kernel). */
function updatedRunning(
  running: RunningStats,
  mean: Tensor1D,
  variance: Tensor1D,
  n: number,
): { mean: Tensor1D; variance: Tensor1D } {
  const m = running.momentum;
  return tidy(() => ({
    mean: add(mul(running.mean, 1 - m), mul(mean, m)) as Tensor1D,
    variance: add(
      mul(running.variance, 1 - m),
      mul(variance, (m * n) / Math.max(n - 1, 1)),
    ) as Tensor1D,
  }));
}

/** The fused kernel's inputs and attributes for `running`, checked. */
function runningInputs(
  op: string,
  running: RunningStats | undefined,
): [Record<string, Tensor>, Record<string, number>] {
  if (running === undefined) return [{}, {}];
  const m = running.momentum;
  if (typeof m !== 'number' || !(m >= 0 && m <= 1)) {
    throw new RangeError(`${op}: expected a momentum in [0, 1], found ${String(m)}`);
  }
  return [{ runningMean: running.mean, runningVariance: running.variance }, { momentum: m }];
}

/**
 * Batch normalization in training mode over the last (channel) axis, with the batch's own
 * statistics: one fused kernel and one fused gradient on wasm, 4 passes over memory where tfjs's
 * `moments` + `batchNorm` and their gradients take about 20. Gradients flow to x, gamma and beta;
 * `mean` and `variance` are for the running statistics and carry none on wasm. Other backends
 * compute the same with tfjs's ops.
 */
export function batchNormTrain<T extends Tensor>(
  x: T,
  gamma: Tensor1D,
  beta: Tensor1D,
  epsilon = 1e-5,
  running?: RunningStats,
): BatchNormTrainResult<T> {
  return fusedOrOps(BatchNormTrain, x, gamma, beta, epsilon, running, (y) => y);
}

/**
 * The fused kernel `kernelName` where the backend has it, else tfjs's ops (`moments`,
 * `batchNorm`, then `after` on y), with the running statistics updated either way when given.
 */
function fusedOrOps<T extends Tensor>(
  kernelName: string,
  x: T,
  gamma: Tensor1D,
  beta: Tensor1D,
  epsilon: number,
  running: RunningStats | undefined,
  after: (y: T) => T,
): BatchNormTrainResult<T> {
  const [extraInputs, extraAttrs] = runningInputs(kernelName, running);
  if (getKernel(kernelName, getBackend()) !== undefined) {
    const [y, mean, variance, runningMean, runningVariance] = engine().runKernel(
      kernelName,
      { x, gamma, beta, ...extraInputs },
      { epsilon, ...extraAttrs },
    ) as [T, Tensor1D, Tensor1D, Tensor1D?, Tensor1D?];
    return {
      y,
      mean,
      variance,
      ...(running === undefined
        ? {}
        : { running: { mean: runningMean!, variance: runningVariance! } }),
    };
  }
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const stats = moments(x, axes);
  const mean = stats.mean as Tensor1D;
  const variance = stats.variance as Tensor1D;
  const normalized = batchNorm(x, mean, variance, beta, gamma, epsilon) as T;
  const y = after(normalized);
  if (y !== normalized) normalized.dispose();
  const n = x.size / Math.max(x.shape[x.shape.length - 1] ?? 1, 1);
  return {
    y,
    mean,
    variance,
    ...(running === undefined ? {} : { running: updatedRunning(running, mean, variance, n) }),
  };
}

/**
 * `batchNormTrain` followed by a ReLU, as every batch norm of a ResNet but the last of each block
 * is: one pass writes max(y, 0) on wasm (where batch norm and ReLU apart write y, read it and
 * write the ReLU's output), and its gradient applies the ReLU's as it reads dy. `y` is after the
 * ReLU; `mean` and `variance` are the batch's, as `batchNormTrain` gives them.
 */
export function batchNormReluTrain<T extends Tensor>(
  x: T,
  gamma: Tensor1D,
  beta: Tensor1D,
  epsilon = 1e-5,
  running?: RunningStats,
): BatchNormTrainResult<T> {
  return fusedOrOps(BatchNormReluTrain, x, gamma, beta, epsilon, running, (y) => relu(y) as T);
}

export const batchNormTrainGradConfig: GradConfig = {
  kernelName: BatchNormTrain,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    const dy = Array.isArray(dys) ? (dys[0] as Tensor) : dys;
    const [x, gamma, mean, variance] = saved as [Tensor, Tensor, Tensor, Tensor];
    const [dx, dgamma, dbeta] = engine().runKernel(
      BatchNormTrainGrad,
      { dy, x, mean, variance, gamma },
      attrs as never,
    ) as Tensor[];
    return { x: () => dx as Tensor, gamma: () => dgamma as Tensor, beta: () => dbeta as Tensor };
  },
};

export const batchNormReluTrainGradConfig: GradConfig = {
  kernelName: BatchNormReluTrain,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [true, true, true],
  gradFunc: (dys, saved, attrs) => {
    const dy = Array.isArray(dys) ? (dys[0] as Tensor) : dys;
    const [x, gamma, y, mean, variance] = saved as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const [dx, dgamma, dbeta] = engine().runKernel(
      BatchNormTrainGrad,
      { dy, x, mean, variance, gamma, y },
      attrs as never,
    ) as Tensor[];
    return { x: () => dx as Tensor, gamma: () => dgamma as Tensor, beta: () => dbeta as Tensor };
  },
};

/** ReLU's gradient in one pass where the backend has the kernel, else as tfjs-core defines it. */
export const reluGradConfig: GradConfig = {
  kernelName: 'Relu',
  inputsToSave: ['x'],
  gradFunc: (dy, saved) => {
    const [x] = saved as [Tensor];
    return {
      x: () =>
        getKernel(ReluGrad, getBackend()) !== undefined
          ? (engine().runKernel(ReluGrad, { dy: dy as Tensor, x }) as Tensor)
          : mul(dy as Tensor, cast(step(x), 'float32')),
    };
  },
};
