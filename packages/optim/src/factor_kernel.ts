/**
 * THOR's factor blocks by the wasm SIMD kernel of csrc/factors.c: the diagonal blocks of XᵀX·scale
 * straight from a layer's NHWC input (X its im2col rows, never built) or from a matrix of rows,
 * the upper triangle only, float32 tiles summed in float64. `undefined` where WebAssembly SIMD is
 * not available; the caller then takes the tfjs path.
 */
import { factorsWasmBase64 } from './factors_wasm.js';

/** What this file uses of the WebAssembly JS API, which the ES lib types do not declare. */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

/** A convolution's geometry over an NHWC input (a matrix of rows is [m, 1, 1, k], 1×1). */
export interface Im2colGeometry {
  /** [n, h, w, c] */
  shape: [number, number, number, number];
  kernel: [number, number];
  stride: number;
  /** [top, left]: padding rows and columns before the input (those after follow from `out`). */
  padding: [number, number];
  /** [ho, wo] */
  out: [number, number];
}

type FactorBlocksFn = (...args: number[]) => void;

const PAGE_BYTES = 64 << 10;
/** The module's C stack lies in the first 64 KiB (scripts/build-wasm.sh); buffers start after. */
const FIRST_BUFFER = 2 * PAGE_BYTES;
/** As csrc/factors.c's PANEL_ROWS. */
const PANEL_ROWS = 256;

let kernel: { memory: WasmMemory; run: FactorBlocksFn } | null | undefined;
let enabled = true;

/**
 * Turns the wasm kernel off (or back on): `factorBlocks` then returns `undefined`, and THOR builds
 * its factors with tfjs, as where WebAssembly SIMD is missing. For tests and comparisons.
 */
export function useFactorKernel(on: boolean): void {
  enabled = on;
}

function load(): typeof kernel {
  if (!enabled) return null;
  if (kernel !== undefined) return kernel;
  try {
    const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
    if (wasm === undefined) return (kernel = null);
    const bytes = Uint8Array.from(atob(factorsWasmBase64), (ch) => ch.charCodeAt(0));
    const memory = new wasm.Memory({ initial: FIRST_BUFFER / PAGE_BYTES });
    const run = new wasm.Instance(new wasm.Module(bytes), { env: { memory } }).exports
      .factor_blocks;
    kernel = typeof run === 'function' ? { memory, run: run as FactorBlocksFn } : null;
  } catch {
    // No SIMD (the module does not validate) or no WebAssembly at all.
    kernel = null;
  }
  return kernel;
}

/** Whether the wasm kernel runs here (WebAssembly with SIMD). */
export function hasFactorKernel(): boolean {
  return load() !== null;
}

const align = (bytes: number) => Math.ceil(bytes / 16) * 16;

/**
 * [nb, block, block] float32: block kb holds float32(Σ_r X[r, c]·X[r, c']) · scale for the
 * columns c, c' of block kb (kh·kw·c of them in all, HWIO order), zeros past the last column.
 * `undefined` without the kernel.
 */
export function factorBlocks(
  x: Float32Array,
  geometry: Im2colGeometry,
  block: number,
  scale: number,
): Float32Array | undefined {
  const k = load();
  if (!k) return undefined;
  const [n, h, w, c] = geometry.shape;
  if (x.length !== n * h * w * c) {
    throw new Error(
      `factorBlocks: expected ${n * h * w * c} values for an input of shape [${geometry.shape.join(', ')}], found ${x.length}`,
    );
  }
  const [kh, kw] = geometry.kernel;
  const cols = kh * kw * c;
  const nb = Math.ceil(cols / block);
  const wp = Math.ceil(Math.min(block, cols) / 8) * 8;
  const xAt = FIRST_BUFFER;
  const panelAt = xAt + align(x.length * 4);
  const sumAt = panelAt + align(PANEL_ROWS * wp * 4);
  const outAt = sumAt + align(wp * wp * 8);
  const end = outAt + nb * block * block * 4;
  const have = k.memory.buffer.byteLength;
  if (end > have) k.memory.grow(Math.ceil((end - have) / PAGE_BYTES));
  new Float32Array(k.memory.buffer, xAt, x.length).set(x);
  const [pt, pl] = geometry.padding;
  const [ho, wo] = geometry.out;
  k.run(
    xAt,
    n,
    h,
    w,
    c,
    kh,
    kw,
    geometry.stride,
    pt,
    pl,
    ho,
    wo,
    block,
    panelAt,
    sumAt,
    outAt,
    scale,
  );
  return new Float32Array(k.memory.buffer, outAt, nb * block * block).slice();
}
