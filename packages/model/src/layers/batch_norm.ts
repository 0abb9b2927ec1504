import {
  batchNorm,
  dispose,
  relu,
  tidy,
  type Tensor1D,
  type Tensor4D,
  type Variable,
} from '@tensorflow/tfjs-core';
import { batchNormReluTrain, batchNormTrain } from '@thor-ts/backend';

import { init } from '../init.js';
import type { ModelState } from '../state.js';
import type { ForwardContext } from './context.js';

/**
 * Batch norm's constants. `momentum` is PyTorch's: the weight of the new batch in the running
 * averages (torchvision 0.1; MindSpore writes the same as 0.9, the weight of the old value).
 */
export interface BatchNormConfig {
  eps: number;
  momentum: number;
}

export const batchNormPresets = {
  torchvision: { eps: 1e-5, momentum: 0.1 },
  mindspore: { eps: 1e-4, momentum: 0.1 },
} as const satisfies Record<string, BatchNormConfig>;

/** BatchNorm2d over NHWC channels, with PyTorch's running statistics (unbiased variance). */
export class BatchNorm2d {
  readonly weight: Variable;
  readonly bias: Variable;
  readonly runningMean: Variable;
  readonly runningVar: Variable;
  private readonly batches: { value: number };

  constructor(
    state: ModelState,
    readonly name: string,
    readonly channels: number,
    private readonly config: BatchNormConfig,
    zeroGamma = false,
  ) {
    // Every batch norm of a model shares its constants, as torchvision's and MindSpore's do; one
    // that differs is recorded as such.
    for (const [key, value] of [
      ['batch_norm_eps', config.eps],
      ['batch_norm_momentum', config.momentum],
    ] as const) {
      const was = state.metadata.get(key);
      state.metadata.set(key, was === undefined || was === String(value) ? String(value) : 'mixed');
    }
    const c = [channels];
    this.weight = state.add(
      `${name}.weight`,
      'parameter',
      'plain',
      c,
      init.batchNormGamma(channels, zeroGamma),
    );
    this.bias = state.add(`${name}.bias`, 'parameter', 'plain', c, new Float32Array(channels));
    this.runningMean = state.add(
      `${name}.running_mean`,
      'buffer',
      'plain',
      c,
      new Float32Array(channels),
    );
    this.runningVar = state.add(
      `${name}.running_var`,
      'buffer',
      'plain',
      c,
      new Float32Array(channels).fill(1),
    );
    this.batches = state.addCounter(`${name}.num_batches_tracked`);
  }

  /** Batch norm of x, and the ReLU after it when `withRelu` is set (one fused kernel in training). */
  apply(x: Tensor4D, ctx: ForwardContext, withRelu = false): Tensor4D {
    const gamma = this.weight as unknown as Tensor1D;
    const beta = this.bias as unknown as Tensor1D;
    if (!ctx.training) {
      return tidy(() => {
        const y = batchNorm(x, this.runningMean, this.runningVar, beta, gamma, this.config.eps);
        return withRelu ? relu(y) : y;
      }) as Tensor4D;
    }
    const train = withRelu ? batchNormReluTrain : batchNormTrain;
    const { y, mean, variance, running } = train(x, gamma, beta, this.config.eps, {
      mean: this.runningMean as unknown as Tensor1D,
      variance: this.runningVar as unknown as Tensor1D,
      momentum: this.config.momentum,
    });
    // PyTorch's update, unbiased variance and all, in the same kernel as the batch's statistics.
    this.runningMean.assign(running!.mean);
    this.runningVar.assign(running!.variance);
    dispose([mean, variance, running!.mean, running!.variance]);
    this.batches.value += 1;
    return y;
  }
}
