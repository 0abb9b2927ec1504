import { describe, expect, it } from 'vitest';

// @ts-expect-error: a plain ES module of the example, without types.
import { firstReach, judge, targetPoint } from '../criteria.mjs';

/** Metrics lines at `epochs` with these top-1s, one second of training per tenth of an epoch. */
const curve = (points: [number, number][], trainTop1 = 0.5) =>
  points.map(([epoch, top1]) => ({ epoch, top1, trainTop1, trainSeconds: epoch * 10 }));

describe("the reference's criteria", () => {
  it('fix the target at 90% of SGD’s budget and count the first evaluation that reaches it', () => {
    const sgd = curve([
      [2, 0.7],
      [4, 0.8],
      [6, 0.85],
      [7, 0.88],
      [8, 0.9],
    ]);
    // 0.9 × 8 = 7.2: the evaluation nearest it is epoch 7.
    expect(targetPoint(sgd).epoch).toBe(7);
    expect(firstReach(sgd, 0.85)).toEqual({ epoch: 6, seconds: 60 });
    expect(firstReach(sgd, 0.95)).toBeUndefined();
  });

  it('judge time to target, the final gap and reaching SGD’s final, per seed and over seeds', () => {
    const sgd = (at7: number) =>
      curve([
        [1, 0.6],
        [4, 0.8],
        [6, 0.86],
        [7, at7],
        [8, 0.9],
      ]);
    const seeds = [
      // Target T = mean(0.88, 0.86) = 0.87. Seed 1: SGD reaches it at 7 (70 s), THOR at 3.5
      // (35 s ≤ 0.55 × 7 = 3.85 epochs, less time): met. Gap 0.896 − 0.9 = −0.4 points.
      {
        seed: 1,
        sgd: sgd(0.88),
        sgdHalf: curve([[4, 0.84]]),
        thor: curve([
          [2, 0.8],
          [3.5, 0.87],
          [4, 0.896],
        ]),
      },
      // Seed 2: SGD reaches T only at 8 (0.86 < 0.87 at 7); THOR at 4 (4 ≤ 4.4): met on epochs,
      // and its 40 s < 80 s. Gap 0.88 − 0.9 = −2 points. THOR never reaches SGD's final 0.9.
      {
        seed: 2,
        sgd: sgd(0.86),
        sgdHalf: curve([[4, 0.83]]),
        thor: curve([
          [2, 0.8],
          [4, 0.88],
        ]),
      },
    ];
    const v = judge(seeds);
    expect(v.target).toBeCloseTo(0.87, 12);
    expect(v.targetEpoch).toBe(7);
    expect(v.rows.map((r: { sgdToTarget: unknown }) => r.sgdToTarget)).toEqual([
      { epoch: 7, seconds: 70 },
      { epoch: 8, seconds: 80 },
    ]);
    expect(v.rows.map((r: { thorToTarget: { epoch: number } }) => r.thorToTarget.epoch)).toEqual([
      3.5, 4,
    ]);
    expect(v.timeToTarget).toEqual({ met: 2, of: 2 });
    expect(v.gap.mean).toBeCloseTo(-0.012, 12);
    expect(v.gap.met).toBe(false);
    expect(v.reachesFinal).toEqual({ met: 0, of: 2 });
    // One seed alone: its own target, 0.88, which THOR reaches at 4 > 0.55 × 7: not met.
    const one = judge([seeds[0]]);
    expect(one.target).toBe(0.88);
    expect(one.timeToTarget).toEqual({ met: 0, of: 1 });
    expect(one.gap).toMatchObject({ sd: 0, met: true });
  });
});
