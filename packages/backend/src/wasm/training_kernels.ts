import { readFileSync } from 'node:fs';

/**
 * A Winograd kernel over tiles [t0, t0 + tiles) of a 3×3 stride-1 convolution of the NHWC input
 * x [N, H, W, C] (padding pt, pl) with Co output channels: x, a second operand `b`, where the
 * result goes (`into`), the geometry, the tiles and the scratch (pointers as below).
 */
export type WinogradTiles = (
  x: number,
  b: number,
  into: number,
  h: number,
  w: number,
  c: number,
  ho: number,
  wo: number,
  pt: number,
  pl: number,
  co: number,
  t0: number,
  tiles: number,
  scratch: number,
) => void;

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
  bnRunning(
    mean: number,
    variance: number,
    runningMean: number,
    runningVariance: number,
    c: number,
    m: number,
    momentum: number,
    newMean: number,
    newVariance: number,
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
  /** y = max(a + b, 0) over `count` floats. */
  addRelu(a: number, b: number, y: number, count: number): void;
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
  /**
   * `c[m, n] (+)= a[m, k] · b[k, n]`: a's element (i, p) at `a + 4·(i·lda + p)`, b's (p, j) at
   * `b + 4·(p·sbk + j·sbn)`, c row-major with rows `ldc` apart; `scratch` holds
   * `gemmScratchFloats()` floats.
   */
  gemmF32(
    a: number,
    lda: number,
    b: number,
    sbk: number,
    sbn: number,
    c: number,
    ldc: number,
    m: number,
    n: number,
    k: number,
    accumulate: number,
    scratch: number,
  ): void;
  gemmScratchFloats(): number;
  /** Floats of a k × n matrix packed by `gemmPack`. */
  gemmPackedFloats(k: number, n: number): number;
  /** Packs b (strides as in `gemmF32`) for `gemmF32Packed`. */
  gemmPack(b: number, sbk: number, sbn: number, k: number, n: number, out: number): void;
  /** `gemmF32` with b packed by `gemmPack`. */
  gemmF32Packed(
    a: number,
    lda: number,
    packed: number,
    c: number,
    ldc: number,
    m: number,
    n: number,
    k: number,
    accumulate: number,
    scratch: number,
  ): void;
  /** Rows [r0, r0 + rows) of the im2col matrix of an NHWC tensor, [rows, kh·kw·C]. */
  im2col(
    x: number,
    out: number,
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
    r0: number,
    rows: number,
  ): void;
  /** Floats of scratch `convGemm` needs for `rows` output positions. */
  convGemmScratchFloats(rows: number, taps: number, c: number): number;
  /**
   * Output positions [r0, r0 + rows) of a convolution, y [rows, Co], as `gemmF32Packed` on the
   * im2col rows but reading the input's pixels in place (the filter packed by `gemmPack`).
   */
  convGemm(
    x: number,
    packed: number,
    y: number,
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
    co: number,
    r0: number,
    rows: number,
    scratch: number,
  ): void;
  /** Floats of a 3×3 filter transformed and packed by `winogradFilter`: 36 packed matrices. */
  winogradFilterFloats(c: number, co: number): number;
  /**
   * The HWIO 3×3 filter w [3, 3, C, Co] transformed for Winograd F(4×4, 3×3) into u (36·C·Co
   * floats) and packed for the GEMM into `packed` (`winogradFilterFloats(C, Co)`).
   */
  winogradFilter(w: number, u: number, packed: number, c: number, co: number): void;
  /** Floats of scratch `winogradConv` needs for `tiles` tiles. */
  winogradScratchFloats(tiles: number, c: number, co: number): number;
  /**
   * Tiles [t0, t0 + tiles) (4×4 outputs each) of a 3×3 stride-1 convolution into the whole
   * output y [N, Ho, Wo, Co] (`into`), `b` the filter from `winogradFilter`; C and Co multiples
   * of 4.
   */
  winogradConv: WinogradTiles;
  /** Floats of scratch `winogradFilterGrad` needs for `tiles` (at most 256) tiles. */
  winogradGradScratchFloats(tiles: number, c: number, co: number): number;
  /**
   * du [36, Co, C] (`into`) += the gradient with respect to the Winograd-transformed filter over
   * tiles [t0, t0 + tiles) (at most 256) of a 3×3 stride-1 convolution, `b` the output gradient
   * dy [N, Ho, Wo, Co]; C and Co multiples of 4.
   */
  winogradFilterGrad: WinogradTiles;
  /** dw [3, 3, C, Co] from `winogradFilterGrad`'s du; t holds 9·C·Co floats. */
  winogradFilterGradOut(du: number, t: number, dw: number, c: number, co: number): void;
  /** Floats of scratch `convFilterGrad` needs. */
  convFilterGradScratchFloats(): number;
  /**
   * dw [kh, kw, C, Co] += the filter gradient over all `positions` output positions, each
   * window's pixels read in place; C a multiple of 4.
   */
  convFilterGrad(
    x: number,
    dy: number,
    dw: number,
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
    co: number,
    positions: number,
    scratch: number,
  ): void;
}

/**
 * The kernels' two builds: 128-bit SIMD, and the same with relaxed SIMD's fused multiply-add in
 * the GEMM tiles (1.2-1.3x the convolutions' GFLOP/s where the CPU fuses).
 */
const builds = {
  simd128: new URL('../../wasm/training_kernels.wasm', import.meta.url),
  relaxed: new URL('../../wasm/training_kernels_relaxed.wasm', import.meta.url),
};
export type KernelBuild = keyof typeof builds;

const modules = new Map<KernelBuild, WebAssembly.Module>();
const instances = new Map<KernelBuild, WeakMap<WebAssembly.Memory, TrainingKernels>>();
let relaxedValid: boolean | undefined;
let selected: KernelBuild | undefined;

function compiledModule(build: KernelBuild): WebAssembly.Module {
  let compiled = modules.get(build);
  if (compiled === undefined) {
    modules.set(build, (compiled = new WebAssembly.Module(readFileSync(builds[build]))));
  }
  return compiled;
}

/**
 * Whether this runtime runs WebAssembly relaxed SIMD (Node.js ≥ 22; Node 20 only with
 * `--experimental-wasm-relaxed-simd`): whether it compiles the relaxed build.
 */
export function hasRelaxedSimd(): boolean {
  if (relaxedValid === undefined) {
    try {
      compiledModule('relaxed');
      relaxedValid = true;
    } catch (e) {
      if ((e as Error).name !== 'CompileError') throw e;
      relaxedValid = false;
    }
  }
  return relaxedValid;
}

/**
 * Picks the build that kernel contexts made from now on use: the relaxed one where the runtime
 * has relaxed SIMD, unless `relaxed` is false; `relaxed: true` where it has not is an error.
 */
export function selectKernelBuild(relaxed?: boolean): KernelBuild {
  if (relaxed === true && !hasRelaxedSimd()) {
    throw new Error(
      'relaxedSimd: true needs WebAssembly relaxed SIMD (Node.js ≥ 22, or Node.js 20 with ' +
        `--experimental-wasm-relaxed-simd); Node.js ${process.version} does not validate ` +
        builds.relaxed.pathname,
    );
  }
  selected = relaxed !== false && hasRelaxedSimd() ? 'relaxed' : 'simd128';
  return selected;
}

/** Instantiates the kernels over `memory` (the tfjs wasm backend's heap), once per memory and build. */
export function trainingKernelsFor(
  memory: WebAssembly.Memory,
  build: KernelBuild = selected ?? selectKernelBuild(),
): TrainingKernels {
  let perMemory = instances.get(build);
  if (perMemory === undefined) instances.set(build, (perMemory = new WeakMap()));
  const cached = perMemory.get(memory);
  if (cached !== undefined) return cached;
  const wasmUrl = builds[build];
  const e = new WebAssembly.Instance(compiledModule(build), { env: { memory } }).exports as Record<
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
    bnRunning: fn('bn_running'),
    bnTrainGrad: fn('bn_train_grad'),
    reluGrad: fn('relu_grad'),
    addRelu: fn('add_relu'),
    maxPoolGrad: fn('max_pool_grad'),
    copyF32: fn('copy_f32'),
    gemmF32: fn('gemm_f32'),
    gemmScratchFloats: fn('gemm_scratch_floats') as unknown as () => number,
    gemmPackedFloats: fn('gemm_packed_floats') as unknown as (k: number, n: number) => number,
    gemmPack: fn('gemm_pack'),
    gemmF32Packed: fn('gemm_f32_packed'),
    im2col: fn('im2col'),
    convGemmScratchFloats: fn('conv_gemm_scratch_floats') as unknown as (
      rows: number,
      taps: number,
      c: number,
    ) => number,
    convGemm: fn('conv_gemm'),
    winogradFilterFloats: fn('winograd_filter_floats') as unknown as (
      c: number,
      co: number,
    ) => number,
    winogradFilter: fn('winograd_filter'),
    winogradScratchFloats: fn('winograd_scratch_floats') as unknown as (
      tiles: number,
      c: number,
      co: number,
    ) => number,
    winogradConv: fn('winograd_conv'),
    winogradGradScratchFloats: fn('winograd_grad_scratch_floats') as unknown as (
      tiles: number,
      c: number,
      co: number,
    ) => number,
    winogradFilterGrad: fn('winograd_filter_grad'),
    winogradFilterGradOut: fn('winograd_filter_grad_out'),
    convFilterGradScratchFloats: fn('conv_filter_grad_scratch_floats') as unknown as () => number,
    convFilterGrad: fn('conv_filter_grad'),
  };
  perMemory.set(memory, kernels);
  return kernels;
}
