import {
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

import { trainingKernelsFor, type TrainingKernels } from './training_kernels.js';

/** The parts of tfjs-backend-wasm's `BackendWasm` these kernels use. */
export interface WasmBackendLike {
  wasm: { asm: Record<string, unknown> };
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  disposeData(dataId: object): boolean;
}

/** The wasm backend's own kernels that ours call, captured before any of them is replaced. */
export interface BaseKernels {
  conv2d: KernelConfig;
  batchMatMul: KernelConfig;
}

export function captureBaseKernels(): BaseKernels {
  const find = (name: string): KernelConfig => {
    const config = getKernel(name, 'wasm');
    if (config === undefined) {
      throw new Error(
        `expected tfjs-backend-wasm's '${name}' kernel to be registered, found none: ` +
          `import '@tensorflow/tfjs-backend-wasm' (or call initBackend()) first`,
      );
    }
    return config;
  };
  return { conv2d: find('Conv2D'), batchMatMul: find('BatchMatMul') };
}

/**
 * Runs wasm kernels on raw tensor data: allocation, views, and calls into XNNPACK through the
 * backend's own kernels, with the intermediates freed by the caller.
 */
export class WasmContext {
  readonly k: TrainingKernels;
  private readonly conv2dFunc: KernelFunc;
  private readonly batchMatMulFunc: KernelFunc;

  constructor(
    readonly backend: WasmBackendLike,
    base: BaseKernels,
  ) {
    // A replaced kernel's setup never ran if it was unregistered before the backend started.
    for (const config of [base.conv2d, base.batchMatMul]) config.setupFunc?.(backend as never);
    this.conv2dFunc = base.conv2d.kernelFunc;
    this.batchMatMulFunc = base.batchMatMul.kernelFunc;
    const memory = backend.wasm.asm['memory'];
    if (!(memory instanceof WebAssembly.Memory)) {
      throw new Error('expected the tfjs wasm module to export its memory, found none');
    }
    this.k = trainingKernelsFor(memory);
  }

  /** Byte offset of a tensor's data in the heap. */
  ptr(t: TensorInfo): number {
    const data = this.backend.dataIdMap.get(t.dataId);
    if (data === undefined) throw new Error(`tensor of shape [${t.shape}] has no data on wasm`);
    return data.memoryOffset;
  }

  alloc(shape: number[]): TensorInfo {
    return this.backend.makeOutput(shape, 'float32');
  }

  free(...ts: TensorInfo[]): void {
    for (const t of ts) this.backend.disposeData(t.dataId);
  }

  /** The same data seen with another shape of the same size (no copy, no new reference). */
  view(t: TensorInfo, shape: number[]): TensorInfo {
    return { dataId: t.dataId, shape, dtype: t.dtype };
  }

  /** A stride-1 convolution in XNNPACK with explicit padding [top, bottom, left, right]. */
  conv2d(x: TensorInfo, filter: TensorInfo, pad: [number, number, number, number]): TensorInfo {
    return this.conv2dFunc({
      inputs: { x, filter },
      backend: this.backend as never,
      attrs: {
        strides: [1, 1],
        pad: [
          [0, 0],
          [pad[0], pad[1]],
          [pad[2], pad[3]],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [1, 1],
        dimRoundingMode: undefined,
      } as never,
    }) as TensorInfo;
  }

  /** a [m, k] times b [k, n] in XNNPACK's fully-connected GEMM (no transposes, batch 1). */
  matmul(a: TensorInfo, b: TensorInfo): TensorInfo {
    const [m, k] = a.shape as [number, number];
    const n = b.shape[1] as number;
    const out = this.batchMatMulFunc({
      inputs: { a: this.view(a, [1, m, k]), b: this.view(b, [1, k, n]) },
      backend: this.backend as never,
      attrs: { transposeA: false, transposeB: false } as never,
    }) as TensorInfo;
    return this.view(out, [m, n]);
  }
}
