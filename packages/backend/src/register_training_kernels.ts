import {
  engine,
  getGradient,
  getKernel,
  registerGradient,
  registerKernel,
  unregisterKernel,
  type BatchMatMulAttrs,
  type Conv2DAttrs,
  type Conv2DBackpropFilterAttrs,
  type Conv2DBackpropInputAttrs,
  type KernelConfig,
  type MaxPoolGradAttrs,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

import { batchMatMul } from './kernels/batch_mat_mul.js';
import {
  batchNormTrainGradWasm,
  batchNormTrainWasm,
  elementwise2Wasm,
} from './kernels/batch_norm_train.js';
import { conv2d } from './kernels/conv2d.js';
import { conv2dBackpropFilter } from './kernels/conv2d_backprop_filter.js';
import { conv2dBackpropInput } from './kernels/conv2d_backprop_input.js';
import { maxPoolGrad } from './kernels/max_pool_grad.js';
import { setWinograd } from './kernels/winograd.js';
import { AddRelu, addReluGradConfig } from './ops/add_relu.js';
import {
  BatchNormReluTrain,
  batchNormReluTrainGradConfig,
  BatchNormTrain,
  BatchNormTrainGrad,
  batchNormTrainGradConfig,
  ReluGrad,
  reluGradConfig,
} from './ops/batch_norm_train.js';
import { installLeanGradients } from './lean_gradients.js';
import { registerGradients } from './register_gradients.js';
import { selectKernelBuild } from './wasm/training_kernels.js';
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
  /** Whether this call made the engine free memory during backward passes. */
  leanGradients: boolean;
  /**
   * Whether the wasm kernels registered here run relaxed SIMD's fused multiply-add (the runtime
   * has it and `relaxedSimd` is not false); false where tfjs-backend-wasm is not loaded.
   */
  relaxedSimd: boolean;
  /** Whether the wasm 3×3 stride-1 convolutions run by Winograd's algorithm (`winograd`). */
  winograd: boolean;
}

export interface TrainingKernelsOptions {
  /**
   * Free each op's saved tensors and gradients as soon as the backward pass is past it (default
   * true). tfjs keeps them all to the end, which doubles a train step's peak memory.
   */
  leanGradients?: boolean;
  /**
   * Run the wasm convolutions and matrix products with relaxed SIMD's fused multiply-add: by
   * default where the runtime has it (Node.js ≥ 22). false keeps the 128-bit SIMD build, whose
   * results do not depend on whether the CPU fuses; true where the runtime lacks it is an error.
   */
  relaxedSimd?: boolean;
  /**
   * Run 3×3 stride-1 wasm convolutions of at least 8 channels (multiples of 4) and their
   * gradients by Winograd's F(4×4, 3×3), with 4× fewer multiplies (default true). Its transforms
   * round more than a direct product: relative errors against float64 up to about 1e-5 where
   * the direct GEMM shows 1e-6 (test/conv_gradients.test.ts), as with cuDNN's and oneDNN's
   * Winograd kernels; false keeps the direct GEMM.
   */
  winograd?: boolean;
}

/** Marks our kernel configs so that registering twice replaces nothing. */
const ours = new WeakSet<KernelConfig>();
let base: BaseKernels | undefined;
/** Stock kernels replaced here, for the cases ours hand back to them. */
const replaced = new Map<string, KernelConfig>();
function getKernelBase(name: string) {
  const config = replaced.get(name);
  if (config === undefined)
    throw new Error(`expected tfjs-backend-wasm's '${name}' kernel, found none`);
  return config.kernelFunc;
}
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
    kernelName: 'Conv2D',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) =>
      conv2d(
        context(backend),
        inputs['x'] as TensorInfo,
        inputs['filter'] as TensorInfo,
        attrs as unknown as Conv2DAttrs,
      ),
  },
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
  {
    kernelName: 'MaxPoolGrad',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) =>
      maxPoolGrad(
        context(backend),
        inputs['dy'] as TensorInfo,
        inputs['input'] as TensorInfo,
        attrs as unknown as MaxPoolGradAttrs,
      ),
  },
  ...([BatchNormTrain, BatchNormReluTrain] as const).map((kernelName) => ({
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }: Parameters<KernelConfig['kernelFunc']>[0]) =>
      batchNormTrainWasm(
        context(backend),
        inputs['x'] as TensorInfo,
        inputs['gamma'] as TensorInfo,
        inputs['beta'] as TensorInfo,
        (attrs as { epsilon: number }).epsilon,
        kernelName === BatchNormReluTrain,
        inputs['runningMean'] === undefined
          ? undefined
          : {
              mean: inputs['runningMean'],
              variance: inputs['runningVariance'] as TensorInfo,
              momentum: (attrs as { momentum: number }).momentum,
            },
      ),
  })),
  {
    kernelName: BatchNormTrainGrad,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) =>
      batchNormTrainGradWasm(
        context(backend),
        inputs['dy'] as TensorInfo,
        inputs['x'] as TensorInfo,
        inputs['mean'] as TensorInfo,
        inputs['variance'] as TensorInfo,
        inputs['gamma'] as TensorInfo,
        (attrs as { epsilon: number }).epsilon,
        inputs['y'] as TensorInfo | undefined,
      ),
  },
  {
    kernelName: ReluGrad,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) =>
      elementwise2Wasm(
        context(backend),
        'reluGrad',
        inputs['dy'] as TensorInfo,
        inputs['x'] as TensorInfo,
      ),
  },
  {
    kernelName: AddRelu,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) =>
      elementwise2Wasm(
        context(backend),
        'addRelu',
        inputs['a'] as TensorInfo,
        inputs['b'] as TensorInfo,
      ),
  },
];

/**
 * Identity sharing its input's data, as tfjs-backend-cpu does. tfjs-backend-wasm copies it, and
 * the engine clones every tensor it saves for the backward pass: twice the memory of a train step,
 * and a copy per saved tensor.
 */
wasmKernels.push({
  kernelName: 'Identity',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => {
    const x = inputs['x'] as TensorInfo;
    const base = getKernelBase('Identity');
    if (x.dtype === 'string') return base({ inputs, backend, attrs: {} });
    (backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  },
});

/** Gradients of this package's fused ops, and ReLU's through the one-pass kernel. */
const ownGradients = [
  batchNormTrainGradConfig,
  batchNormReluTrainGradConfig,
  reluGradConfig,
  addReluGradConfig,
];

/**
 * Makes the loaded tfjs backends able to train: registers tfjs-core's gradients (missing in Node
 * ESM) and, when `@tensorflow/tfjs-backend-wasm` is loaded, the wasm kernels that training needs
 * and it lacks or runs slowly (Conv2DBackpropFilter, Conv2DBackpropInput, BatchMatMul with
 * transposes or batches), plus the fused kernels of `batchNormTrain` and ReLU's gradient; and
 * makes backward passes free memory as they go (`leanGradients`). Safe to call more than once; importing this package does none of it.
 */
export async function registerTrainingKernels(
  options: TrainingKernelsOptions = {},
): Promise<TrainingKernelsReport> {
  const gradients = await registerGradients();
  for (const config of ownGradients) {
    if (getGradient(config.kernelName) === config) continue;
    registerGradient(config);
    if (!gradients.includes(config.kernelName)) gradients.push(config.kernelName);
  }
  if (options.relaxedSimd !== undefined && typeof options.relaxedSimd !== 'boolean') {
    throw new Error(
      `registerTrainingKernels: expected relaxedSimd to be true, false or undefined, found ${JSON.stringify(options.relaxedSimd)}`,
    );
  }
  if (options.winograd !== undefined && typeof options.winograd !== 'boolean') {
    throw new Error(
      `registerTrainingKernels: expected winograd to be true, false or undefined, found ${JSON.stringify(options.winograd)}`,
    );
  }
  const registered: string[] = [];
  let relaxedSimd = false;
  let winograd = false;
  if (getKernel('Conv2D', 'wasm') !== undefined) {
    relaxedSimd = selectKernelBuild(options.relaxedSimd) === 'relaxed';
    winograd = options.winograd ?? true;
    setWinograd(winograd);
    for (const config of wasmKernels) {
      const existing = getKernel(config.kernelName, 'wasm');
      if (existing !== undefined && ours.has(existing)) continue;
      // The wasm backend's own kernels that ours call, taken before Conv2D is replaced.
      base ??= captureBaseKernels();
      if (existing !== undefined) {
        replaced.set(config.kernelName, existing);
        unregisterKernel(config.kernelName, 'wasm');
      }
      registerKernel(config);
      ours.add(config);
      registered.push(config.kernelName);
    }
  }
  const leanGradients = (options.leanGradients ?? true) && installLeanGradients(engine());
  return { gradients, wasmKernels: registered, leanGradients, relaxedSimd, winograd };
}
