import type { ModelState } from '../state.js';

/** How a layer maps its input to its output, which is what its curvature factors are built from. */
export interface TapGeometry {
  kind: 'conv2d' | 'linear';
  /** conv2d only: kernel size, stride and padding (top, bottom, left, right). */
  kernel?: [number, number];
  stride?: number;
  padding?: [number, number, number, number];
}

/** A layer whose curvature a preconditioner (THOR, K-FAC) can model, as `declareCurvature` made it. */
export interface CurvatureLayer extends TapGeometry {
  /** The layer's name, which its taps carry ('layer1.0.conv1'). */
  name: string;
  /** The state entry of its weight, which its gradient is keyed by ('layer1.0.conv1.weight'). */
  weight: string;
}

/** What a layer of one's own declares: its geometry, and its weight's name if not `<name>.weight`. */
export interface CurvatureSpec extends TapGeometry {
  name: string;
  weight?: string;
}

/**
 * Declares, once, that layer `spec.name` of a model can be preconditioned (kfac-pytorch's layer
 * registry): a 2-D convolution (`kind: 'conv2d'`, with its kernel, stride and padding) or a linear
 * layer (`kind: 'linear'`). Its weight must already be in `state`, laid out as the built-in
 * layers lay theirs: an HWIO kernel [kh, kw, in, out] (layout 'conv') or an [in, out] matrix
 * (layout 'linear'). In `forward`, the layer then passes its input and output through
 * `ctx.taps.record(layer, input, output)` when `ctx.taps?.wants(layer.name)`. Layers not declared
 * (batch norm, biases, anything else) train by the optimizer alone. Returns the declaration.
 */
export function declareCurvature(state: ModelState, spec: CurvatureSpec): CurvatureLayer {
  const where = `declareCurvature('${spec.name}')`;
  const weight = spec.weight ?? `${spec.name}.weight`;
  const entry = state.get(weight);
  if (entry === undefined || entry.kind !== 'parameter') {
    throw new Error(
      `${where}: expected its weight '${weight}' among the model's parameters (add it to the state first), found ${entry === undefined ? 'no such entry' : `a ${entry.kind}`}`,
    );
  }
  let layer: CurvatureLayer;
  if (spec.kind === 'conv2d') {
    const kernel = spec.kernel ?? [1, 1];
    const stride = spec.stride ?? 1;
    const padding = spec.padding ?? [0, 0, 0, 0];
    const ok =
      entry.layout === 'conv' &&
      entry.shape.length === 4 &&
      entry.shape[0] === kernel[0] &&
      entry.shape[1] === kernel[1];
    if (!ok) {
      throw new Error(
        `${where}: expected an HWIO kernel [${kernel[0]}, ${kernel[1]}, in, out] with layout 'conv' as weight '${weight}', found [${entry.shape}] with layout '${entry.layout}'`,
      );
    }
    const counts = [stride, ...padding];
    if (!(
      Number.isInteger(stride) &&
      stride >= 1 &&
      counts.every((n) => Number.isInteger(n) && n >= 0)
    )) {
      throw new Error(
        `${where}: expected an integer stride ≥ 1 and paddings ≥ 0, found stride ${stride}, padding [${padding}]`,
      );
    }
    layer = { name: spec.name, weight, kind: 'conv2d', kernel, stride, padding };
  } else if (spec.kind === 'linear') {
    if (entry.layout !== 'linear' || entry.shape.length !== 2) {
      throw new Error(
        `${where}: expected an [in, out] matrix with layout 'linear' as weight '${weight}', found [${entry.shape}] with layout '${entry.layout}'`,
      );
    }
    layer = { name: spec.name, weight, kind: 'linear' };
  } else {
    throw new Error(
      `${where}: expected kind 'conv2d' or 'linear', found ${JSON.stringify(spec.kind)}`,
    );
  }
  state.declare(layer);
  return layer;
}
