import { readFileSync } from 'node:fs';

/** The data-movement kernels of `csrc/training_kernels.c`; pointers are byte offsets in the heap. */
export interface TrainingKernels {
  transposeBatched(src: number, dst: number, batch: number, rows: number, cols: number): void;
  im2colT(
    x: number,
    out: number,
    n: number,
    h: number,
    w: number,
    c: number,
    oh0: number,
    oh1: number,
    wo: number,
    sh: number,
    sw: number,
    kw: number,
    pt: number,
    pl: number,
    t0: number,
    t1: number,
  ): void;
  filterPhase(
    w: number,
    out: number,
    kw: number,
    ci: number,
    co: number,
    i0: number,
    th: number,
    j0: number,
    tw: number,
    sh: number,
    sw: number,
  ): void;
  scatterPhase(
    phase: number,
    dx: number,
    n: number,
    qh: number,
    qw: number,
    c: number,
    h: number,
    w: number,
    sh: number,
    sw: number,
    rh: number,
    rw: number,
  ): void;
  cropNhwc(
    x: number,
    out: number,
    n: number,
    h: number,
    w: number,
    c: number,
    h0: number,
    w0: number,
    ho: number,
    wo: number,
  ): void;
  col2imAdd(
    cols: number,
    dx: number,
    n: number,
    h: number,
    w: number,
    c: number,
    ho: number,
    wo: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
  ): void;
  fillZero(ptr: number, count: number): void;
  addF32(dst: number, src: number, count: number): void;
  bnTrain(
    x: number,
    y: number,
    m: number,
    c: number,
    gamma: number,
    beta: number,
    eps: number,
    mean: number,
    variance: number,
    scratch: number,
    relu: number,
  ): void;
  bnTrainGrad(
    dy: number,
    x: number,
    m: number,
    c: number,
    mean: number,
    variance: number,
    gamma: number,
    eps: number,
    dx: number,
    dgamma: number,
    dbeta: number,
    scratch: number,
    y: number,
  ): void;
  reluGrad(dy: number, x: number, dx: number, count: number): void;
  maxPoolGrad(
    x: number,
    dy: number,
    dx: number,
    n: number,
    h: number,
    w: number,
    c: number,
    ho: number,
    wo: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
    scratch: number,
  ): void;
  copyF32(src: number, dst: number, count: number): void;
}

const wasmUrl = new URL('../../wasm/training_kernels.wasm', import.meta.url);
let compiled: WebAssembly.Module | undefined;
const instances = new WeakMap<WebAssembly.Memory, TrainingKernels>();

/** Instantiates the kernels over `memory` (the tfjs wasm backend's heap), once per memory. */
export function trainingKernelsFor(memory: WebAssembly.Memory): TrainingKernels {
  const cached = instances.get(memory);
  if (cached !== undefined) return cached;
  compiled ??= new WebAssembly.Module(readFileSync(wasmUrl));
  const e = new WebAssembly.Instance(compiled, { env: { memory } }).exports as Record<
    string,
    (...args: number[]) => void
  >;
  const fn = (name: string) => {
    const f = e[name];
    if (typeof f !== 'function') {
      throw new Error(`${wasmUrl.pathname}: expected an export named '${name}', found none`);
    }
    return f;
  };
  const kernels: TrainingKernels = {
    transposeBatched: fn('transpose_batched'),
    im2colT: fn('im2col_t'),
    filterPhase: fn('filter_phase'),
    scatterPhase: fn('scatter_phase'),
    cropNhwc: fn('crop_nhwc'),
    col2imAdd: fn('col2im_add'),
    fillZero: fn('fill_zero'),
    addF32: fn('add_f32'),
    bnTrain: fn('bn_train'),
    bnTrainGrad: fn('bn_train_grad'),
    reluGrad: fn('relu_grad'),
    maxPoolGrad: fn('max_pool_grad'),
    copyF32: fn('copy_f32'),
  };
  instances.set(memory, kernels);
  return kernels;
}
