import { avgPool, pad, type Tensor4D } from '@tensorflow/tfjs-core';
import { addRelu } from '@thor-ts/backend';

import { BatchNorm2d, type BatchNormConfig } from './layers/batch_norm.js';
import type { ForwardContext } from './layers/context.js';
import { Conv2d } from './layers/conv2d.js';
import type { Rng } from './rng.js';
import type { ModelState } from './state.js';

/** How a residual branch's input reaches the addition when its shape changes. */
export type Shortcut =
  /** A 1×1 convolution and batch norm (`downsample.0`, `downsample.1`): torchvision. */
  | 'projection'
  /** Subsampling and zero channels, no parameters: He et al. 2016's option A for CIFAR. */
  | 'zero-pad';

export interface BlockOptions {
  batchNorm: BatchNormConfig;
  shortcut: Shortcut;
  zeroInitResidual: boolean;
}

export interface Block {
  readonly outChannels: number;
  apply(x: Tensor4D, ctx: ForwardContext): Tensor4D;
}

/** A residual block type: `expansion` × width output channels, built under a name prefix. */
export interface BlockKind {
  readonly name: 'basic' | 'bottleneck';
  readonly expansion: number;
  build(
    state: ModelState,
    rng: Rng,
    prefix: string,
    inChannels: number,
    width: number,
    stride: number,
    options: BlockOptions,
  ): Block;
}

/** A convolution or a batch norm; a batch norm takes the ReLU after it (`withRelu`) too. */
type Layer = { apply(x: Tensor4D, ctx: ForwardContext, withRelu?: boolean): Tensor4D };

class Residual implements Block {
  constructor(
    readonly outChannels: number,
    private readonly branch: Layer[],
    private readonly shortcut: Layer | undefined,
  ) {}

  apply(x: Tensor4D, ctx: ForwardContext): Tensor4D {
    let y = x;
    this.branch.forEach((layer, i) => {
      // ReLU after every batch norm but the last, which waits for the addition.
      y = layer.apply(y, ctx, i % 2 === 1 && i < this.branch.length - 1);
    });
    const identity = this.shortcut === undefined ? x : this.shortcut.apply(x, ctx);
    // The residual add and the ReLU after it, one pass on wasm.
    return addRelu(y, identity);
  }
}

function shortcut(
  state: ModelState,
  rng: Rng,
  prefix: string,
  inChannels: number,
  outChannels: number,
  stride: number,
  options: BlockOptions,
): Layer | undefined {
  if (stride === 1 && inChannels === outChannels) return undefined;
  if (options.shortcut === 'zero-pad') {
    const extra = outChannels - inChannels;
    return {
      apply: (x) => {
        const sub = stride === 1 ? x : avgPool(x, 1, stride, 'valid');
        const before = extra >> 1;
        return pad(sub, [
          [0, 0],
          [0, 0],
          [0, 0],
          [before, extra - before],
        ]);
      },
    };
  }
  const conv = new Conv2d(
    state,
    rng,
    `${prefix}.downsample.0`,
    inChannels,
    outChannels,
    1,
    stride,
    0,
  );
  const bn = new BatchNorm2d(state, `${prefix}.downsample.1`, outChannels, options.batchNorm);
  return { apply: (x, ctx) => bn.apply(conv.apply(x, ctx), ctx) };
}

/** Two 3×3 convolutions (ResNet-18/34, the CIFAR ResNets); the stride is on the first. */
export const basicBlock: BlockKind = {
  name: 'basic',
  expansion: 1,
  build(state, rng, prefix, inChannels, width, stride, options) {
    const conv1 = new Conv2d(state, rng, `${prefix}.conv1`, inChannels, width, 3, stride, 1);
    const bn1 = new BatchNorm2d(state, `${prefix}.bn1`, width, options.batchNorm);
    const conv2 = new Conv2d(state, rng, `${prefix}.conv2`, width, width, 3, 1, 1);
    const bn2 = new BatchNorm2d(
      state,
      `${prefix}.bn2`,
      width,
      options.batchNorm,
      options.zeroInitResidual,
    );
    const sc = shortcut(state, rng, prefix, inChannels, width, stride, options);
    return new Residual(width, [conv1, bn1, conv2, bn2], sc);
  },
};

/** 1×1, 3×3, 1×1 convolutions, 4× wider out; v1.5: the stride is on the 3×3 (ResNet-50/101/152). */
export const bottleneck: BlockKind = {
  name: 'bottleneck',
  expansion: 4,
  build(state, rng, prefix, inChannels, width, stride, options) {
    const out = width * 4;
    const conv1 = new Conv2d(state, rng, `${prefix}.conv1`, inChannels, width, 1, 1, 0);
    const bn1 = new BatchNorm2d(state, `${prefix}.bn1`, width, options.batchNorm);
    const conv2 = new Conv2d(state, rng, `${prefix}.conv2`, width, width, 3, stride, 1);
    const bn2 = new BatchNorm2d(state, `${prefix}.bn2`, width, options.batchNorm);
    const conv3 = new Conv2d(state, rng, `${prefix}.conv3`, width, out, 1, 1, 0);
    const bn3 = new BatchNorm2d(
      state,
      `${prefix}.bn3`,
      out,
      options.batchNorm,
      options.zeroInitResidual,
    );
    const sc = shortcut(state, rng, prefix, inChannels, out, stride, options);
    return new Residual(out, [conv1, bn1, conv2, bn2, conv3, bn3], sc);
  },
};
