import { describe, expect, it } from 'vitest';

import { applyTransforms, fullView, imagenetEvalTransforms, Random } from '../dist/index.js';
import { pythonRound } from '../dist/transforms/python_round.js';
import { randomResizedCropParams } from '../dist/transforms/random_resized_crop.js';

describe('randomResizedCropParams (torchvision RandomResizedCrop.get_params)', () => {
  it('falls back to a center crop clamped to the ratio range when 10 tries fail', () => {
    // 1000×10: any area ≥ 0.08·10000 = 800 at a ratio ≤ 4/3 needs h ≥ √(800·3/4) ≈ 24.5 > 10, so all
    // tries fail. Width/height 100 > 4/3: h = 10, w = round(10·4/3 = 13.33) = 13,
    // i = (10 − 10) // 2 = 0, j = (1000 − 13) // 2 = 493.
    expect(randomResizedCropParams(1000, 10, new Random(1))).toEqual({
      i: 0,
      j: 493,
      h: 10,
      w: 13,
    });
    // The transpose: 0.01 < 3/4, so w = 10, h = round(10 / (3/4)) = 13, i = 493, j = 0.
    expect(randomResizedCropParams(10, 1000, new Random(1))).toEqual({
      i: 493,
      j: 0,
      h: 13,
      w: 10,
    });
  });

  it('rounds the crop size half to even, as Python does', () => {
    // 5×5 at scale 1/4 and ratio 1: √(25/4) = 2.5 exactly, which Python rounds to 2 (not 3).
    expect(pythonRound(2.5)).toBe(2);
    expect(pythonRound(3.5)).toBe(4);
    expect(pythonRound(-2.5)).toBe(-2);
    for (let seed = 0; seed < 20; seed++) {
      const { i, j, h, w } = randomResizedCropParams(5, 5, new Random(seed), [0.25, 0.25], [1, 1]);
      expect([h, w]).toEqual([2, 2]);
      expect(i >= 0 && i <= 3 && j >= 0 && j <= 3).toBe(true);
    }
  });

  it('draws crops inside the image, covering 8–100% of it at ratios within 3/4–4/3 (±rounding)', () => {
    for (let index = 0; index < 500; index++) {
      const { i, j, h, w } = randomResizedCropParams(500, 375, Random.forSample(7, 0, index));
      expect(i >= 0 && j >= 0 && i + h <= 375 && j + w <= 500).toBe(true);
      // Accepted crops keep the drawn area and ratio up to rounding; the fallback for 500×375
      // (ratio 4/3, inside the range) is the whole image, which keeps them too.
      const area = (h * w) / (500 * 375);
      expect(area).toBeGreaterThan(0.079);
      expect(area).toBeLessThanOrEqual(1);
      expect(w / h).toBeGreaterThan(0.74);
      expect(w / h).toBeLessThan(1.35);
    }
  });

  it('is a function of (seed, epoch, index) alone', () => {
    const draw = (seed: number, epoch: number, index: number) =>
      randomResizedCropParams(500, 375, Random.forSample(seed, epoch, index));
    expect(draw(1, 2, 3)).toEqual(draw(1, 2, 3));
    const others = [draw(1, 2, 4), draw(1, 3, 3), draw(2, 2, 3)];
    for (const other of others) expect(other).not.toEqual(draw(1, 2, 3));
  });
});

describe('eval geometry (Resize(256), CenterCrop(224))', () => {
  it('maps the 224² output back onto the 500×375 source', () => {
    // Resize(256): the shorter side 375 → 256, the longer 500 → int(256·500/375 = 341.33) = 341.
    // CenterCrop(224): top = round((256 − 224)/2) = 16, left = round((341 − 224)/2 = 58.5) = 58
    // (half to even). In source pixels: scale 500/341 across, 375/256 down.
    const view = applyTransforms(fullView(500, 375), imagenetEvalTransforms(), new Random(0));
    expect(view.width).toBe(224);
    expect(view.height).toBe(224);
    expect(view.left).toBeCloseTo((58 * 500) / 341, 9);
    expect(view.top).toBeCloseTo((16 * 375) / 256, 9);
    expect(view.cropWidth).toBeCloseTo((224 * 500) / 341, 9);
    expect(view.cropHeight).toBeCloseTo((224 * 375) / 256, 9);
  });
});
