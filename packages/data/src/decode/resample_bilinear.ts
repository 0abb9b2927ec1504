import type { RawImage } from './raw_image.js';

/** Fixed-point fraction bits of the coefficients, as in Pillow (`32 - 8 - 2`). */
const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);

/** Where each output pixel reads and with which weights, for one axis. */
interface Coefficients {
  /** First source index of output k. */
  readonly first: Int32Array;
  /** Number of source pixels output k reads. */
  readonly count: Int32Array;
  /** `ksize` fixed-point weights per output (zero past `count`). */
  readonly weights: Int32Array;
  readonly ksize: number;
}

/**
 * Pillow's `precompute_coeffs` for its bilinear (triangle) filter, antialiased: when shrinking,
 * the filter widens by the scale. Weights are normalized in float64, then rounded to fixed point
 * as Pillow's `normalize_coeffs_8bpc` does.
 */
function coefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle's support is 1
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) / filterScale);
      w[x] = t < 1 ? 1 - t : 0;
      total += w[x]!;
    }
    for (let x = 0; x < xmax; x++) {
      const k = total === 0 ? w[x]! : w[x]! / total;
      weights[xx * ksize + x] = Math.trunc(
        k < 0 ? k * (1 << PRECISION_BITS) - 0.5 : k * (1 << PRECISION_BITS) + 0.5,
      );
    }
    first[xx] = xmin;
    count[xx] = xmax;
  }
  return { first, count, weights, ksize };
}

/**
 * The horizontal pass's output, reused from call to call: the passes run synchronously and the
 * vertical pass reads it before anything else can, so one buffer serves every image.
 */
let rowsScratch = new Uint8Array(0);

function scratch(length: number): Uint8Array {
  if (rowsScratch.length < length)
    rowsScratch = new Uint8Array(Math.max(length, 2 * rowsScratch.length));
  return rowsScratch.subarray(0, length);
}

function clip8(sum: number): number {
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** A window of an image: `width`×`height` pixels from (`left`, `top`). */
export interface PixelWindow {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Resizes `image` to `width`×`height` with Pillow's antialiased bilinear filter, as
 * `Image.resize(size, Image.BILINEAR)` (what torchvision's `Resize` and `RandomResizedCrop` run on
 * PIL images), and returns `window` of the result (default all of it; only the window's pixels
 * are computed). A horizontal pass over the rows the vertical pass needs is rounded to 8 bits,
 * then the vertical pass runs, both in Pillow's 22-bit fixed point, so the result is Pillow's to
 * the bit.
 */
export function resampleBilinear(
  image: RawImage,
  width: number,
  height: number,
  window: PixelWindow = { left: 0, top: 0, width, height },
): RawImage {
  const { rows, vertical, top } = horizontal(image, width, height, window);
  return verticalPass(rows, vertical, window, top);
}

/**
 * {@link resampleBilinear}, written through `table` (see `normalizationTable`) as float32 HWC into
 * `out` at `offset`, mirrored left to right when `flip` is set: the same bytes as resampling then
 * `writeNormalized`, without the 8-bit image in between.
 */
export function resampleBilinearNormalized(
  image: RawImage,
  width: number,
  height: number,
  window: PixelWindow,
  table: Float32Array,
  out: Float32Array,
  offset: number,
  flip: boolean,
): void {
  const { rows, vertical, top } = horizontal(image, width, height, window);
  const { first, count, weights, ksize } = vertical;
  const row = rows.width * 3;
  const data = rows.data;
  const sums = new Int32Array(row);
  for (let yy = window.top; yy < window.top + window.height; yy++) {
    verticalSums(data, row, first[yy]! - top, count[yy]!, weights, yy * ksize, sums);
    let o = offset + (yy - window.top) * row + (flip ? row - 3 : 0);
    const step = flip ? -3 : 3;
    for (let x = 0; x < row; x += 3, o += step) {
      out[o] = table[clip8(sums[x]!)]!;
      out[o + 1] = table[256 + clip8(sums[x + 1]!)]!;
      out[o + 2] = table[512 + clip8(sums[x + 2]!)]!;
    }
  }
}

/** Checks the window, then runs the horizontal pass over the rows the vertical pass will read. */
function horizontal(image: RawImage, width: number, height: number, window: PixelWindow) {
  if (
    window.left < 0 ||
    window.top < 0 ||
    window.left + window.width > width ||
    window.top + window.height > height
  ) {
    throw new RangeError(
      `Expected a window inside the ${width}×${height} result, found ${window.width}×` +
        `${window.height} at (${window.left}, ${window.top}).`,
    );
  }
  const vertical = coefficients(image.height, height);
  const top = vertical.first[window.top]!;
  const last = window.top + window.height - 1;
  const bottom = vertical.first[last]! + vertical.count[last]!;
  const rows = horizontalPass(image, coefficients(image.width, width), window, top, bottom);
  return { rows, vertical, top };
}

/** The horizontal pass, for the window's columns and source rows `top` to `bottom`. */
function horizontalPass(
  image: RawImage,
  c: Coefficients,
  window: PixelWindow,
  top: number,
  bottom: number,
): RawImage {
  const { first, count, weights, ksize } = c;
  const rows = bottom - top;
  const width = window.width;
  const out = scratch(rows * width * 3);
  const data = image.data;
  const inRow = image.width * 3;
  for (let y = 0; y < rows; y++) {
    const rowStart = (y + top) * inRow;
    let o = y * width * 3;
    for (let xx = window.left; xx < window.left + width; xx++) {
      const n = count[xx]!;
      const kOff = xx * ksize;
      let p = rowStart + first[xx]! * 3;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let x = 0; x < n; x++, p += 3) {
        const k = weights[kOff + x]!;
        r += data[p]! * k;
        g += data[p + 1]! * k;
        b += data[p + 2]! * k;
      }
      out[o++] = clip8(r);
      out[o++] = clip8(g);
      out[o++] = clip8(b);
    }
  }
  return { data: out, width, height: rows, channels: 3 };
}

/** The vertical pass, for the window's rows, over rows that start at source row `top`. */
function verticalPass(
  image: RawImage,
  c: Coefficients,
  window: PixelWindow,
  top: number,
): RawImage {
  const { first, count, weights, ksize } = c;
  const row = image.width * 3;
  const height = window.height;
  const out = new Uint8Array(height * row);
  const data = image.data;
  const sums = new Int32Array(row);
  for (let yy = window.top; yy < window.top + height; yy++) {
    verticalSums(data, row, first[yy]! - top, count[yy]!, weights, yy * ksize, sums);
    const o = (yy - window.top) * row;
    for (let x = 0; x < row; x++) out[o + x] = clip8(sums[x]!);
  }
  return { data: out, width: image.width, height, channels: 3 };
}

/**
 * One output row of the vertical pass before rounding: `sums[x]` = half + Σ weight × source value
 * over the `n` source rows from `firstRow`. Up to five rows (every shrink below 2×) run as one
 * pass (three when enlarging) with the missing rows weighted zero; more rows run one row at a
 * time.
 */
function verticalSums(
  data: Uint8Array,
  row: number,
  firstRow: number,
  n: number,
  weights: Int32Array,
  kOff: number,
  sums: Int32Array,
): void {
  if (n <= 3) {
    const p0 = firstRow * row;
    const p1 = n > 1 ? p0 + row : p0;
    const p2 = n > 2 ? p0 + 2 * row : p0;
    const k0 = weights[kOff]!;
    const k1 = n > 1 ? weights[kOff + 1]! : 0;
    const k2 = n > 2 ? weights[kOff + 2]! : 0;
    for (let x = 0; x < row; x++) {
      sums[x] = HALF + data[p0 + x]! * k0 + data[p1 + x]! * k1 + data[p2 + x]! * k2;
    }
    return;
  }
  if (n <= 5) {
    const p0 = firstRow * row;
    const p1 = n > 1 ? p0 + row : p0;
    const p2 = n > 2 ? p0 + 2 * row : p0;
    const p3 = n > 3 ? p0 + 3 * row : p0;
    const p4 = n > 4 ? p0 + 4 * row : p0;
    const k0 = weights[kOff]!;
    const k1 = n > 1 ? weights[kOff + 1]! : 0;
    const k2 = n > 2 ? weights[kOff + 2]! : 0;
    const k3 = n > 3 ? weights[kOff + 3]! : 0;
    const k4 = n > 4 ? weights[kOff + 4]! : 0;
    for (let x = 0; x < row; x++) {
      sums[x] =
        HALF +
        data[p0 + x]! * k0 +
        data[p1 + x]! * k1 +
        data[p2 + x]! * k2 +
        data[p3 + x]! * k3 +
        data[p4 + x]! * k4;
    }
    return;
  }
  sums.fill(HALF);
  for (let y = 0; y < n; y++) {
    const k = weights[kOff + y]!;
    const p = (firstRow + y) * row;
    for (let x = 0; x < row; x++) sums[x] = sums[x]! + data[p + x]! * k;
  }
}
