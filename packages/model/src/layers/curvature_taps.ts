import { clone, customGrad, keep, type Tensor } from '@tensorflow/tfjs-core';

/** How a tapped layer maps its input to its output, for building curvature factors from it. */
export interface TapGeometry {
  kind: 'conv2d' | 'linear';
  /** conv2d only: kernel size, stride and padding (top, bottom, left, right). */
  kernel?: [number, number];
  stride?: number;
  padding?: [number, number, number, number];
}

/** What one tapped layer saw in one forward/backward pass. */
export interface LayerTap {
  layer: string;
  geometry: TapGeometry;
  /** The layer's input: [N, H, W, Cin] for a convolution, [N, in] for a linear layer. */
  input: Tensor;
  /** The gradient of the loss with respect to the layer's output (same shape as the output). */
  outputGrad?: Tensor;
}

/**
 * Captures, for each convolution and linear layer, its input during the forward pass and the
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

  /** Records `input` and returns `output` unchanged, wired so its gradient is recorded too. */
  record(layer: string, geometry: TapGeometry, input: Tensor, output: Tensor): Tensor {
    const previous = this.captured.get(layer);
    if (previous !== undefined) disposeTap(previous);
    const tap: LayerTap = { layer, geometry, input: keep(clone(input)) };
    this.captured.set(layer, tap);
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
