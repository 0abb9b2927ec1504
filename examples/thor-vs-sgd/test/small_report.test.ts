import type { EpochMetrics } from '@thor-ts/train';
import { describe, expect, it } from 'vitest';

import { compare } from '../small_report.mjs';
import { lineChart } from '../svg_plot.mjs';

const epoch = (e: number, top1: number, seconds: number): EpochMetrics => ({
  optimizer: 'sgd',
  epoch: e,
  step: e * 10,
  trainLoss: 1,
  trainTop1: top1,
  top1,
  top5: 1,
  trainSeconds: seconds,
  wallSeconds: seconds,
  imagesPerSecond: 1,
  lr: 0.1,
  refreshes: 0,
});

describe('the comparison', () => {
  it('finds the first THOR epoch at SGD’s final top-1 and checks ≤ 0.55× epochs and less time', () => {
    const sgd = [1, 2, 3, 4].map((e) => epoch(e, 0.5 + e / 10, e * 100));
    expect(compare(sgd, [epoch(1, 0.7, 90), epoch(2, 0.95, 180)])).toMatchObject({
      target: 0.9,
      thorEpochs: 2,
      met: true,
    });
    // 3 of 4 epochs is more than 0.55×.
    expect(compare(sgd, [epoch(1, 0.7, 90), epoch(2, 0.8, 180), epoch(3, 0.91, 270)]).met).toBe(
      false,
    );
    // Reached in time by epochs but slower in seconds.
    expect(compare(sgd, [epoch(1, 0.7, 300), epoch(2, 0.95, 420)]).met).toBe(false);
    expect(compare(sgd, [epoch(1, 0.7, 90)])).toMatchObject({ thorEpochs: undefined, met: false });
  });

  it('plots series as SVG', () => {
    const svg = lineChart('t', 'x', 'y', [
      {
        name: 'a<b',
        color: 'red',
        points: [
          [0, 1],
          [1, 2],
        ],
      },
    ]);
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('a&lt;b');
    expect(svg).toContain('<path d="M');
  });
});
