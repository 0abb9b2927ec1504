import { tensor, variable, type Tensor, type Variable } from '@tensorflow/tfjs-core';

import type { CurvatureLayer } from './layers/curvature.js';

/**
 * How a tensor is laid out here versus in a torchvision state_dict: convolution kernels are
 * HWIO here and OIHW there, linear weights [in, out] here and [out, in] there.
 */
export type Layout = 'conv' | 'linear' | 'plain';

/** One entry of a model's state, named as in torchvision's state_dict. */
export interface StateEntry {
  name: string;
  /** Trainable parameter, running statistic, or batch counter (int64 in PyTorch). */
  kind: 'parameter' | 'buffer' | 'counter';
  layout: Layout;
  /** Shape here (NHWC/HWIO layout). */
  shape: number[];
  /** Parameters and buffers. */
  variable?: Variable;
  /** Counters. */
  counter?: { value: number };
}

let models = 0;

/**
 * The named state of one model, in torchvision's state_dict order, and the layers it declares to
 * preconditioners (`declareCurvature`).
 */
export class ModelState {
  readonly entries: StateEntry[] = [];
  /**
   * What a reader of the saved weights needs besides the tensors (`arch`, `arch_options`,
   * `batch_norm_eps`…): written into safetensors' `__metadata__` by `saveWeights`.
   */
  readonly metadata = new Map<string, string>();
  private readonly byName = new Map<string, StateEntry>();
  private readonly curvatureLayers = new Map<string, CurvatureLayer>();
  /** tfjs variable names are global: each model gets its own prefix. */
  private readonly prefix = `thor-ts.model${models++}.`;

  add(
    name: string,
    kind: 'parameter' | 'buffer',
    layout: Layout,
    shape: number[],
    values: Float32Array,
  ): Variable {
    const t: Tensor = tensor(values, shape, 'float32');
    const v = variable(t, kind === 'parameter', this.prefix + name);
    t.dispose();
    this.push({ name, kind, layout, shape, variable: v });
    return v;
  }

  addCounter(name: string): { value: number } {
    const counter = { value: 0 };
    this.push({ name, kind: 'counter', layout: 'plain', shape: [], counter });
    return counter;
  }

  get(name: string): StateEntry | undefined {
    return this.byName.get(name);
  }

  /** Records a layer's declaration (`declareCurvature` checks it and calls this). */
  declare(layer: CurvatureLayer): void {
    if (this.curvatureLayers.has(layer.name))
      throw new Error(`model state: layer '${layer.name}' declares its curvature twice`);
    this.curvatureLayers.set(layer.name, layer);
  }

  /** The layers declared to preconditioners, in declaration order. */
  get curvature(): CurvatureLayer[] {
    return [...this.curvatureLayers.values()];
  }

  private push(entry: StateEntry): void {
    if (this.byName.has(entry.name))
      throw new Error(`model state: '${entry.name}' is defined twice`);
    this.entries.push(entry);
    this.byName.set(entry.name, entry);
  }

  dispose(): void {
    for (const e of this.entries) e.variable?.dispose();
  }
}
