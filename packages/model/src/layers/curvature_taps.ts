import { clone, customGrad, keep, type Tensor } from '@tensorflow/tfjs-core';

import type { CurvatureLayer, TapGeometry } from './curvature.js';

/** What one tapped layer saw in one forward/backward pass. */
export interface LayerTap {
  /** The layer's name. */
  layer: string;
  geometry: TapGeometry;
  /** The state entry of its weight, which its gradient is keyed by. */
  weight: string;
  /** The layer's input: [N, H, W, Cin] for a convolution, [N, in] for a linear layer. */
  input: Tensor;
  /** The gradient of the loss with respect to the layer's output (same shape as the output). */
  outputGrad?: Tensor;
}

/**
 * Captures, for each declared layer (`declareCurvature`), its input during the forward pass and the
 * gradient with respect to its output during the backward pass of the same step — what K-FAC and
 * THOR build their factors from. Pass one to `model.forward(x, { training, taps })`; layers
 * without taps do no extra work. The captured tensors belong to this object: `dispose()` them.
 */
export class CurvatureTaps {
  private readonly captured = new Map<string, LayerTap>();

  /** @param layers Names of the layers to tap (torchvision names, e.g. 'layer1.0.conv2'); all if omitted. */
  constructor(private readonly layers?: ReadonlySet<string>) {}

  wants(layer: string): boolean {
    return this.layers === undefined || this.layers.has(layer);
  }

  /**
   * Records `input` of a declared layer and returns `output` unchanged, wired so its gradient is
   * recorded too.
   */
  record(layer: CurvatureLayer, input: Tensor, output: Tensor): Tensor {
    const { name, weight, ...geometry } = layer;
    const previous = this.captured.get(name);
    if (previous !== undefined) disposeTap(previous);
    const tap: LayerTap = { layer: name, geometry, weight, input: keep(clone(input)) };
    this.captured.set(name, tap);
    const passThrough = customGrad((...args) => ({
      value: clone(args[0] as Tensor),
      gradFunc: (dy: Tensor) => {
        if (tap.outputGrad !== undefined) tap.outputGrad.dispose();
        tap.outputGrad = keep(clone(dy));
        return dy;
      },
    }));
    return passThrough(output);
  }

  get(layer: string): LayerTap | undefined {
    return this.captured.get(layer);
  }

  all(): LayerTap[] {
    return [...this.captured.values()];
  }

  dispose(): void {
    for (const tap of this.captured.values()) disposeTap(tap);
    this.captured.clear();
  }
}

function disposeTap(tap: LayerTap): void {
  tap.input.dispose();
  tap.outputGrad?.dispose();
}
