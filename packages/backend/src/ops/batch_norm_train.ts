import {
  batchNorm,
  cast,
  relu,
  engine,
  getBackend,
  getKernel,
  moments,
  mul,
  step,
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
): BatchNormTrainResult<T> {
  if (getKernel(BatchNormTrain, getBackend()) !== undefined) {
    const [y, mean, variance] = engine().runKernel(
      BatchNormTrain,
      { x, gamma, beta },
      { epsilon },
    ) as [T, Tensor1D, Tensor1D];
    return { y, mean, variance };
  }
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const { mean, variance } = moments(x, axes);
  const y = batchNorm(x, mean, variance, beta, gamma, epsilon) as T;
  return { y, mean: mean as Tensor1D, variance: variance as Tensor1D };
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
): BatchNormTrainResult<T> {
  if (getKernel(BatchNormReluTrain, getBackend()) !== undefined) {
    const [y, mean, variance] = engine().runKernel(
      BatchNormReluTrain,
      { x, gamma, beta },
      { epsilon },
    ) as [T, Tensor1D, Tensor1D];
    return { y, mean, variance };
  }
  const { y, mean, variance } = batchNormTrain(x, gamma, beta, epsilon);
  return { y: relu(y) as T, mean, variance };
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
