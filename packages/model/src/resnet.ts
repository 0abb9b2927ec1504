import { maxPool, mean, type Tensor, type Tensor2D, type Tensor4D } from '@tensorflow/tfjs-core';

import type { Block, BlockKind, Shortcut } from './blocks.js';
import { BatchNorm2d, batchNormPresets, type BatchNormConfig } from './layers/batch_norm.js';
import type { ForwardContext } from './layers/context.js';
import { Conv2d } from './layers/conv2d.js';
import { Linear } from './layers/linear.js';
import { parameterCount, predict, type Model } from './model.js';
import { Rng } from './rng.js';
import { ModelState, type StateEntry } from './state.js';

export interface StemOptions {
  /** Output channels of conv1 (torchvision 64). */
  width: number;
  /** conv1's kernel (7) and stride (2); padding is kernel / 2, as torchvision's. */
  kernel: number;
  stride: number;
  /** A 3×3/2 max-pool (padding 1) after conv1's ReLU. */
  maxPool: boolean;
}

export interface ResNetOptions {
  /** Classifier outputs: 1000 for ImageNet (torchvision), 1001 for MindSpore's ImageNet labels. */
  classes?: number;
  /** Width of each stage's blocks (torchvision [64, 128, 256, 512]); one per entry of `layers`. */
  widths?: number[];
  stem?: Partial<StemOptions>;
  inputChannels?: number;
  shortcut?: Shortcut;
  /** γ = 0 on each block's last batch norm, so blocks start as identities (Goyal et al. 2017). */
  zeroInitResidual?: boolean;
  batchNorm?: keyof typeof batchNormPresets | BatchNormConfig;
  /** Seed of the initialization. */
  seed?: number;
}

export interface ResNetSpec {
  block: BlockKind;
  layers: number[];
  options: Required<Omit<ResNetOptions, 'stem' | 'batchNorm'>> & {
    stem: StemOptions;
    batchNorm: BatchNormConfig;
  };
}

/**
 * A ResNet v1.5 with torchvision's structure and state_dict names, computed NHWC: `forward`
 * takes [batch, height, width, channels] images and returns [batch, classes] logits.
 */
export class ResNet implements Model {
  readonly state = new ModelState();
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm2d;
  private readonly blocks: Block[] = [];
  private readonly fc: Linear;

  constructor(readonly spec: ResNetSpec) {
    const { block, layers, options: o } = spec;
    if (o.widths.length !== layers.length) {
      throw new Error(
        `resnet: expected one width per stage (${layers.length}), found ${o.widths.length}`,
      );
    }
    const rng = new Rng(o.seed);
    const s = o.stem;
    this.conv1 = new Conv2d(
      this.state,
      rng,
      'conv1',
      o.inputChannels,
      s.width,
      s.kernel,
      s.stride,
      s.kernel >> 1,
    );
    this.bn1 = new BatchNorm2d(this.state, 'bn1', s.width, o.batchNorm);
    let channels = s.width;
    layers.forEach((count, stage) => {
      for (let i = 0; i < count; i++) {
        const stride = i === 0 && stage > 0 ? 2 : 1;
        const b = block.build(
          this.state,
          rng,
          `layer${stage + 1}.${i}`,
          channels,
          o.widths[stage] as number,
          stride,
          {
            batchNorm: o.batchNorm,
            shortcut: o.shortcut,
            zeroInitResidual: o.zeroInitResidual,
          },
        );
        this.blocks.push(b);
        channels = b.outChannels;
      }
    });
    this.fc = new Linear(this.state, rng, 'fc', channels, o.classes);
  }

  forward(images: Tensor, ctx: ForwardContext = { training: false }): Tensor2D {
    const c = this.spec.options.inputChannels;
    if (images.rank !== 4 || images.shape[3] !== c || images.dtype !== 'float32') {
      throw new Error(
        `ResNet.forward: expected float32 images [batch, height, width, ${c}] (NHWC), ` +
          `found ${images.dtype} [${images.shape}]`,
      );
    }
    let x = this.bn1.apply(this.conv1.apply(images as Tensor4D, ctx), ctx, true);
    if (this.spec.options.stem.maxPool) x = maxPool(x, 3, 2, 1);
    for (const b of this.blocks) x = b.apply(x, ctx);
    return this.fc.apply(mean(x, [1, 2]) as Tensor2D, ctx);
  }

  /** Logits in eval mode (running statistics), with intermediates freed. */
  predict(images: Tensor): Tensor2D {
    return predict(this, images);
  }

  /** Trainable parameters by torchvision name, in torchvision's order. */
  parameters(): Map<string, StateEntry> {
    return new Map(
      this.state.entries.filter((e) => e.kind === 'parameter').map((e) => [e.name, e]),
    );
  }

  /** The number of trainable values (torchvision's `sum(p.numel() for p in model.parameters())`). */
  parameterCount(): number {
    return parameterCount(this);
  }

  dispose(): void {
    this.state.dispose();
  }
}

const torchvisionStem: StemOptions = { width: 64, kernel: 7, stride: 2, maxPool: true };

/** A ResNet from data: `resnet(bottleneck, [3, 4, 6, 3])` is ResNet-50. */
export function resnet(block: BlockKind, layers: number[], options: ResNetOptions = {}): ResNet {
  const bn = options.batchNorm ?? 'torchvision';
  return new ResNet({
    block,
    layers,
    options: {
      classes: options.classes ?? 1000,
      widths: options.widths ?? [64, 128, 256, 512].slice(0, layers.length),
      stem: { ...torchvisionStem, ...options.stem },
      inputChannels: options.inputChannels ?? 3,
      shortcut: options.shortcut ?? 'projection',
      zeroInitResidual: options.zeroInitResidual ?? false,
      batchNorm: typeof bn === 'string' ? batchNormPresets[bn] : bn,
      seed: options.seed ?? 0,
    },
  });
}
