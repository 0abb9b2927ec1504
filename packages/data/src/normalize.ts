import type { RawImage } from './raw_image.js';

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

/** Writes `image` normalized through `table` into `out` at `offset` (HWC). */
export function writeNormalized(
  image: RawImage,
  table: Float32Array,
  out: Float32Array,
  offset: number,
): void {
  const { data } = image;
  for (let k = 0; k < data.length; k += 3) {
    out[offset + k] = table[data[k]!]!;
    out[offset + k + 1] = table[256 + data[k + 1]!]!;
    out[offset + k + 2] = table[512 + data[k + 2]!]!;
  }
}
