import {
  add,
  cast,
  clone,
  engine,
  getBackend,
  getKernel,
  mul,
  relu,
  step,
  type GradConfig,
  type Tensor,
} from '@tensorflow/tfjs-core';

import { ReluGrad } from './batch_norm_train.js';

/** Kernel name of the fused residual add and ReLU (registered on wasm by `registerTrainingKernels`). */
export const AddRelu = 'ThorAddRelu';

/**
 * `relu(add(a, b))` for two float32 tensors of the same shape, as a ResNet block ends (its
 * residual add, then the ReLU): one pass writing max(a + b, 0) on wasm, where the two apart write
 * the sum, read it back and write the ReLU's output; its gradient is ReLU's, passed to both
 * inputs. Other backends, and other shapes or dtypes (broadcasting), compute `relu(add(a, b))`.
 */
export function addRelu<T extends Tensor>(a: T, b: T): T {
  const same =
    a.dtype === 'float32' &&
    b.dtype === 'float32' &&
    a.shape.length === b.shape.length &&
    a.shape.every((d, i) => d === b.shape[i]);
  if (same && getKernel(AddRelu, getBackend()) !== undefined) {
    return engine().runKernel(AddRelu, { a, b }) as T;
  }
  return relu(add(a, b)) as T;
}

export const addReluGradConfig: GradConfig = {
  kernelName: AddRelu,
  outputsToSave: [true],
  gradFunc: (dy, saved) => {
    const [y] = saved as [Tensor];
    // y > 0 exactly where a + b > 0: ReLU's mask, read from the output. Computed once, by a's
    // function (both engines call the inputs' in the order given, a then b); b gets a clone (the
    // same data on wasm and cpu), so no gradient map holds one tensor twice.
    let dx: Tensor | undefined;
    const grad = (): Tensor =>
      (dx ??=
        getKernel(ReluGrad, getBackend()) !== undefined
          ? (engine().runKernel(ReluGrad, { dy: dy as Tensor, x: y }) as Tensor)
          : mul(dy as Tensor, cast(step(y), 'float32')));
    return { a: grad, b: () => clone(grad()) };
  },
};
