import {
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';

import { conv2dGemm } from '../kernels/conv2d.js';
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
  return { conv2d: find('Conv2D') };
}

/**
 * Runs wasm kernels on raw tensor data: allocation, views, the package's GEMM, and XNNPACK's
 * convolution (for what the GEMM path does not take) through the backend's own kernel, with the
 * intermediates freed by the caller.
 */
export class WasmContext {
  readonly k: TrainingKernels;
  private readonly conv2dFunc: KernelFunc;

  constructor(
    readonly backend: WasmBackendLike,
    base: BaseKernels,
  ) {
    // A replaced kernel's setup never ran if it was unregistered before the backend started.
    base.conv2d.setupFunc?.(backend as never);
    this.conv2dFunc = base.conv2d.kernelFunc;
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

  /** A stride-1 convolution with explicit padding [top, bottom, left, right] (`conv2dGemm`). */
  conv2d(x: TensorInfo, filter: TensorInfo, pad: [number, number, number, number]): TensorInfo {
    const [n, h, w, ci] = x.shape as [number, number, number, number];
    const [kh, kw, , co] = filter.shape as [number, number, number, number];
    return conv2dGemm(this, x, filter, {
      n,
      h,
      w,
      ci,
      co,
      kh,
      kw,
      ho: h + pad[0] + pad[1] - kh + 1,
      wo: w + pad[2] + pad[3] - kw + 1,
      sh: 1,
      sw: 1,
      pt: pad[0],
      pl: pad[2],
    });
  }

  /** XNNPACK's convolution, as tfjs-backend-wasm's Conv2D kernel runs it. */
  conv2dXnnpack(x: TensorInfo, filter: TensorInfo, attrs: unknown): TensorInfo {
    return this.conv2dFunc({
      inputs: { x, filter },
      backend: this.backend as never,
      attrs: attrs as never,
    }) as TensorInfo;
  }

  /** a [m, k] times b [k, n] in the package's own GEMM (`gemm`). */
  matmul(a: TensorInfo, b: TensorInfo): TensorInfo {
    const [m, k] = a.shape as [number, number];
    const n = b.shape[1] as number;
    const out = this.alloc([m, n]);
    this.gemm(
      { ptr: this.ptr(a), rowStride: k },
      { ptr: this.ptr(b), kStride: n, nStride: 1 },
      { ptr: this.ptr(out), rowStride: n },
      m,
      n,
      k,
      false,
    );
    return out;
  }

  /**
   * `c (+)= a · b` for strided views into the heap, in the package's own GEMM (`gemm_f32` in
   * csrc/): a is m × k with k contiguous, b is k × n with any strides (a transposed matrix is
   * `kStride: 1`), c is m × n with n contiguous; `accumulate` adds to c instead of overwriting it.
   */
  gemm(a: RowMajor, b: Strided, c: RowMajor, m: number, n: number, k: number, accumulate: boolean) {
    const scratch = this.gemmScratch();
    this.k.gemmF32(
      a.ptr,
      a.rowStride,
      b.ptr,
      b.kStride,
      b.nStride,
      c.ptr,
      c.rowStride,
      m,
      n,
      k,
      accumulate ? 1 : 0,
      this.ptr(scratch),
    );
    this.free(scratch);
  }

  /** b (k × n, any strides) packed once for several `gemmPacked` calls; the caller frees it. */
  packB(b: Strided, k: number, n: number): TensorInfo {
    const packed = this.alloc([this.k.gemmPackedFloats(k, n)]);
    this.k.gemmPack(b.ptr, b.kStride, b.nStride, k, n, this.ptr(packed));
    return packed;
  }

  /** `gemm` with b packed by `packB`. */
  gemmPacked(
    a: RowMajor,
    packed: TensorInfo,
    c: RowMajor,
    m: number,
    n: number,
    k: number,
    accumulate: boolean,
  ): void {
    const scratch = this.gemmScratch();
    this.k.gemmF32Packed(
      a.ptr,
      a.rowStride,
      this.ptr(packed),
      c.ptr,
      c.rowStride,
      m,
      n,
      k,
      accumulate ? 1 : 0,
      this.ptr(scratch),
    );
    this.free(scratch);
  }

  private gemmScratch(): TensorInfo {
    this.gemmScratchFloats ??= this.k.gemmScratchFloats();
    return this.alloc([this.gemmScratchFloats]);
  }
  private gemmScratchFloats: number | undefined;
}

/** A matrix in the heap with contiguous rows `rowStride` floats apart (ptr in bytes). */
export interface RowMajor {
  ptr: number;
  rowStride: number;
}

/** A k × n matrix in the heap, element (p, j) at `ptr + 4·(p·kStride + j·nStride)`. */
export interface Strided {
  ptr: number;
  kStride: number;
  nStride: number;
}
