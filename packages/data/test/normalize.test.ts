import { describe, expect, it } from 'vitest';

import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizationTable,
  writeNormalized,
  type RawImage,
} from '../dist/index.js';

describe('writeNormalized (ToTensor + Normalize, HWC)', () => {
  const table = normalizationTable({ mean: IMAGENET_MEAN, std: IMAGENET_STD });
  // A 3×2 image whose pixel (x, y) is (10x + y, 100 + x, 200 + y).
  const image: RawImage = {
    data: Uint8Array.from(
      [0, 1].flatMap((y) => [0, 1, 2].flatMap((x) => [10 * x + y, 100 + x, 200 + y])),
    ),
    width: 3,
    height: 2,
    channels: 3,
  };
  const at = (x: number, y: number) => [0, 1, 2].map((c) => image.data[(y * 3 + x) * 3 + c]!);
  // (v / 255 − mean) / std in float64, then rounded to float32 like the table.
  const expected = (rgb: number[]) =>
    rgb.map((v, c) => Math.fround((v / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!));

  it("maps each channel's bytes through ImageNet's mean and std, at the given offset", () => {
    const out = new Float32Array(5 + 18).fill(-99);
    writeNormalized(image, table, out, 5);
    expect(Array.from(out.subarray(0, 5))).toEqual([-99, -99, -99, -99, -99]);
    for (let y = 0; y < 2; y++) {
      for (let x = 0; x < 3; x++) {
        const k = 5 + (y * 3 + x) * 3;
        expect(Array.from(out.subarray(k, k + 3))).toEqual(expected(at(x, y)));
      }
    }
    expect(table[0]).toBeCloseTo(-0.485 / 0.229, 6);
    expect(table[512 + 255]).toBeCloseTo((1 - 0.406) / 0.225, 6);
  });

  it('mirrors each row when asked, keeping channels in order', () => {
    const out = new Float32Array(18);
    writeNormalized(image, table, out, 0, true);
    for (let y = 0; y < 2; y++) {
      for (let x = 0; x < 3; x++) {
        const k = (y * 3 + x) * 3;
        expect(Array.from(out.subarray(k, k + 3))).toEqual(expected(at(2 - x, y)));
      }
    }
  });
});
