import { tidy, type Tensor, type Tensor2D, type Variable } from '@tensorflow/tfjs-core';

import type { ForwardContext } from './layers/context.js';
import type { ModelState } from './state.js';

/**
 * What a trainable model exposes: the contract `train()`, `evaluate()`, checkpoints, safetensors
 * and THOR rely on (like PyTorch's `nn.Module` as torchvision and kfac-pytorch use it).
 *
 * - `state` holds every parameter, buffer and counter under torchvision-style names
 *   ('features.0.weight', 'bn1.running_mean'), in state_dict order, laid out as `ModelState.add`
 *   says; it is what checkpoints and safetensors files hold. It also lists the layers declared
 *   to preconditioners (`declareCurvature`); the built-in `Conv2d` and `Linear` declare themselves.
 * - `forward(images, ctx)` maps float32 NHWC images [batch, height, width, channels] to logits
 *   [batch, classes]. With `ctx.training`, batch norm uses (and updates) batch statistics; with
 *   `ctx.taps`, each declared layer records its input and output gradient.
 * - `dispose()` frees the state's tensors.
 */
export interface Model {
  readonly state: ModelState;
  forward(images: Tensor, ctx?: ForwardContext): Tensor2D;
  dispose(): void;
}

/** The model's trainable variables by name, in state_dict order (PyTorch's `named_parameters()`). */
export function namedParameters(model: Model): Map<string, Variable> {
  const out = new Map<string, Variable>();
  for (const e of model.state.entries) {
    if (e.kind === 'parameter' && e.variable !== undefined) out.set(e.name, e.variable);
  }
  return out;
}

/** The number of trainable values (PyTorch's `sum(p.numel() for p in model.parameters())`). */
export function parameterCount(model: Model): number {
  let n = 0;
  for (const v of namedParameters(model).values()) n += v.size;
  return n;
}

/** Logits in eval mode (running statistics), with intermediates freed. */
export function predict(model: Model, images: Tensor): Tensor2D {
  return tidy(() => model.forward(images, { training: false }));
}
