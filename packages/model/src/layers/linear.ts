import { add, matMul, type Tensor1D, type Tensor2D, type Variable } from '@tensorflow/tfjs-core';

import { init } from '../init.js';
import type { Rng } from '../rng.js';
import type { ModelState } from '../state.js';
import type { ForwardContext } from './context.js';
import { declareCurvature, type CurvatureLayer } from './curvature.js';

/** y = x·W + b with W stored [in, out] (torchvision's fc.weight is its transpose). */
export class Linear {
  readonly weight: Variable;
  readonly bias: Variable;
  readonly curvature: CurvatureLayer;

  constructor(
    state: ModelState,
    rng: Rng,
    readonly name: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    this.weight = state.add(
      `${name}.weight`,
      'parameter',
      'linear',
      [inFeatures, outFeatures],
      init.linearWeight(rng, inFeatures, outFeatures),
    );
    this.bias = state.add(
      `${name}.bias`,
      'parameter',
      'plain',
      [outFeatures],
      init.linearBias(rng, inFeatures, outFeatures),
    );
    this.curvature = declareCurvature(state, { name, kind: 'linear' });
  }

  apply(x: Tensor2D, ctx: ForwardContext): Tensor2D {
    const y = add(
      matMul(x, this.weight as unknown as Tensor2D),
      this.bias as unknown as Tensor1D,
    ) as Tensor2D;
    if (ctx.taps === undefined || !ctx.taps.wants(this.name)) return y;
    return ctx.taps.record(this.curvature, x, y) as Tensor2D;
  }
}
