import { basicBlock, bottleneck } from './blocks.js';
import { resnet, type ResNet, type ResNetOptions } from './resnet.js';

export const resnet18 = (o?: ResNetOptions): ResNet => resnet(basicBlock, [2, 2, 2, 2], o);
export const resnet34 = (o?: ResNetOptions): ResNet => resnet(basicBlock, [3, 4, 6, 3], o);
export const resnet50 = (o?: ResNetOptions): ResNet => resnet(bottleneck, [3, 4, 6, 3], o);
export const resnet101 = (o?: ResNetOptions): ResNet => resnet(bottleneck, [3, 4, 23, 3], o);
export const resnet152 = (o?: ResNetOptions): ResNet => resnet(bottleneck, [3, 8, 36, 3], o);

/**
 * He et al. 2016 §4.2's ResNets for 32×32 images: a 3×3 conv of 16 channels, three stages of n basic
 * blocks at 16, 32 and 64 channels, parameter-free shortcuts (option A); depth = 6n + 2.
 */
export function cifarResnet(depth: number, o: ResNetOptions = {}): ResNet {
  if (!Number.isInteger(depth) || depth < 8 || (depth - 2) % 6 !== 0) {
    throw new Error(
      `cifarResnet: expected a depth of 6n + 2 (20, 32, 44, 56, 110…), found ${depth}`,
    );
  }
  const n = (depth - 2) / 6;
  return resnet(basicBlock, [n, n, n], {
    classes: 10,
    widths: [16, 32, 64],
    stem: { width: 16, kernel: 3, stride: 1, maxPool: false },
    shortcut: 'zero-pad',
    ...o,
  });
}

export const cifarResnet20 = (o?: ResNetOptions): ResNet => cifarResnet(20, o);
export const cifarResnet32 = (o?: ResNetOptions): ResNet => cifarResnet(32, o);
export const cifarResnet56 = (o?: ResNetOptions): ResNet => cifarResnet(56, o);

/** resnetLight's own options: blocks per stage, and the block. */
export interface LightOptions {
  layers?: number[];
  block?: 'basic' | 'bottleneck';
}

/**
 * A ResNet with a light stem (3×3/1 conv, no max-pool) for small images, any depth and width:
 * `resnetLight({ layers: [2, 2, 2], widths: [32, 64, 128] })`.
 */
export function resnetLight(o: ResNetOptions & LightOptions = {}): ResNet {
  const { layers = [2, 2, 2, 2], block = 'basic', ...rest } = o;
  const widths = rest.widths ?? [32, 64, 128, 256].slice(0, layers.length);
  return resnet(block === 'basic' ? basicBlock : bottleneck, layers, {
    ...rest,
    widths,
    stem: { width: widths[0] ?? 32, kernel: 3, stride: 1, maxPool: false, ...rest.stem },
  });
}
