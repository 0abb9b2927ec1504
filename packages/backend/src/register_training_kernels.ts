import {
  getKernel,
  registerKernel,
  unregisterKernel,
  type BatchMatMulAttrs,
  type Conv2DBackpropFilterAttrs,
  type Conv2DBackpropInputAttrs,
  type KernelConfig,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

import { batchMatMul } from './kernels/batch_mat_mul.js';
import { conv2dBackpropFilter } from './kernels/conv2d_backprop_filter.js';
import { conv2dBackpropInput } from './kernels/conv2d_backprop_input.js';
import { registerGradients } from './register_gradients.js';
import {
  captureBaseKernels,
  WasmContext,
  type BaseKernels,
  type WasmBackendLike,
} from './wasm/wasm_context.js';

/** What `registerTrainingKernels()` changed. */
export interface TrainingKernelsReport {
  /** Kernels whose tfjs-core gradient was missing and is now registered. */
  gradients: string[];
  /** Kernels registered on `wasm`; empty if tfjs-backend-wasm is not loaded. */
  wasmKernels: string[];
}

/** Marks our kernel configs so that registering twice replaces nothing. */
const ours = new WeakSet<KernelConfig>();
let base: BaseKernels | undefined;
const contexts = new WeakMap<object, WasmContext>();

function context(backend: unknown): WasmContext {
  let ctx = contexts.get(backend as object);
  if (ctx === undefined) {
    if (base === undefined) throw new Error('the wasm training kernels were not registered');
    ctx = new WasmContext(backend as WasmBackendLike, base);
    contexts.set(backend as object, ctx);
  }
  return ctx;
}

const wasmKernels: KernelConfig[] = [
  {
    kernelName: 'Conv2DBackpropInput',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) =>
      conv2dBackpropInput(
        context(backend),
        inputs['dy'] as TensorInfo,
        inputs['filter'] as TensorInfo,
        attrs as unknown as Conv2DBackpropInputAttrs,
      ),
  },
  {
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) =>
      conv2dBackpropFilter(
        context(backend),
        inputs['x'] as TensorInfo,
        inputs['dy'] as TensorInfo,
        attrs as unknown as Conv2DBackpropFilterAttrs,
      ),
  },
  {
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) =>
      batchMatMul(
        context(backend),
        inputs['a'] as TensorInfo,
        inputs['b'] as TensorInfo,
        attrs as unknown as BatchMatMulAttrs,
      ),
  },
];

/**
 * Makes the loaded tfjs backends able to train: registers tfjs-core's gradients (missing in Node
 * ESM) and, when `@tensorflow/tfjs-backend-wasm` is loaded, the wasm kernels that training needs
 * and it lacks or runs slowly (Conv2DBackpropFilter, Conv2DBackpropInput, BatchMatMul with
 * transposes or batches). Safe to call more than once; importing this package does none of it.
 */
export async function registerTrainingKernels(): Promise<TrainingKernelsReport> {
  const gradients = await registerGradients();
  const registered: string[] = [];
  if (getKernel('Conv2D', 'wasm') !== undefined) {
    for (const config of wasmKernels) {
      const existing = getKernel(config.kernelName, 'wasm');
      if (existing !== undefined && ours.has(existing)) continue;
      // The wasm backend's own kernels that ours call, taken before BatchMatMul is replaced.
      base ??= captureBaseKernels();
      if (existing !== undefined) unregisterKernel(config.kernelName, 'wasm');
      registerKernel(config);
      ours.add(config);
      registered.push(config.kernelName);
    }
  }
  return { gradients, wasmKernels: registered };
}
