import type { RawImage } from '../decode/raw_image.js';

/** ImageNet's per-channel mean and standard deviation (RGB, pixel values scaled to [0, 1]). */
export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

export interface Normalization {
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

/**
 * A 3×256 table: `table[c * 256 + v]` is `(v / 255 - mean[c]) / std[c]`, torchvision's
 * `ToTensor` then `Normalize`, computed in float64 once and rounded to float32 when stored.
 */
export function normalizationTable(norm: Normalization): Float32Array {
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    for (let v = 0; v < 256; v++) table[c * 256 + v] = (v / 255 - norm.mean[c]!) / norm.std[c]!;
  }
  return table;
}

/**
 * Writes `image` normalized through `table` into `out` at `offset` (HWC), mirrored left to right
 * when `flip` is set (so a flip costs no pass of its own).
 */
export function writeNormalized(
  image: RawImage,
  table: Float32Array,
  out: Float32Array,
  offset: number,
  flip = false,
): void {
  const { data, width, height } = image;
  const row = width * 3;
  const step = flip ? -3 : 3;
  for (let y = 0; y < height; y++) {
    let to = offset + y * row;
    let from = y * row + (flip ? row - 3 : 0);
    for (let x = 0; x < width; x++, to += 3, from += step) {
      out[to] = table[data[from]!]!;
      out[to + 1] = table[256 + data[from + 1]!]!;
      out[to + 2] = table[512 + data[from + 2]!]!;
    }
  }
}
