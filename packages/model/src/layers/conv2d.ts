import { conv2d, type Tensor4D, type Variable } from '@tensorflow/tfjs-core';

import { init } from '../init.js';
import type { Rng } from '../rng.js';
import type { ModelState } from '../state.js';
import type { ForwardContext } from './context.js';
import { declareCurvature, type CurvatureLayer } from './curvature.js';

/** A bias-free 2-D convolution with PyTorch's symmetric padding, NHWC in and out. */
export class Conv2d {
  readonly weight: Variable;
  readonly curvature: CurvatureLayer;
  private readonly pad: [[0, 0], [number, number], [number, number], [0, 0]];

  constructor(
    state: ModelState,
    rng: Rng,
    readonly name: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    readonly stride: number,
    readonly padding: number,
  ) {
    const shape: [number, number, number, number] = [kernel, kernel, inChannels, outChannels];
    this.weight = state.add(`${name}.weight`, 'parameter', 'conv', shape, init.conv(rng, shape));
    this.curvature = declareCurvature(state, {
      name,
      kind: 'conv2d',
      kernel: [kernel, kernel],
      stride,
      padding: [padding, padding, padding, padding],
    });
    this.pad = [
      [0, 0],
      [padding, padding],
      [padding, padding],
      [0, 0],
    ];
  }

  apply(x: Tensor4D, ctx: ForwardContext): Tensor4D {
    if (x.shape[3] !== this.inChannels) {
      throw new Error(
        `${this.name}: expected input [batch, height, width, ${this.inChannels}] (NHWC), found [${x.shape}]`,
      );
    }
    const y = conv2d(x, this.weight as unknown as Tensor4D, this.stride, this.pad);
    if (ctx.taps === undefined || !ctx.taps.wants(this.name)) return y;
    return ctx.taps.record(this.curvature, x, y) as Tensor4D;
  }
}
