import { describe, expect, it } from 'vitest';

import { DistributedSampler } from '../dist/index.js';

const shards = (n: number, replicas: number, options = {}, epoch = 0) =>
  Array.from({ length: replicas }, (_, rank) =>
    Array.from(
      new DistributedSampler(n, { numReplicas: replicas, rank, ...options }).indices(epoch),
    ),
  );

describe('DistributedSampler', () => {
  it('pads by wrapping around, like PyTorch, when the dataset does not divide evenly', () => {
    // 10 over 3 ranks: ceil(10/3) = 4 each, total 12, so [0..9, 0, 1] dealt round robin.
    expect(shards(10, 3, { shuffle: false })).toEqual([
      [0, 3, 6, 9],
      [1, 4, 7, 0],
      [2, 5, 8, 1],
    ]);
    // 2 over 5 ranks: padding 3 > 2 repeats the list: [0, 1] + [0, 1, 0].
    expect(shards(2, 5, { shuffle: false })).toEqual([[0], [1], [0], [1], [0]]);
  });

  it('cuts the tail with dropLast: ceil((10 − 3)/3) = 3 each', () => {
    const sampler = new DistributedSampler(10, { numReplicas: 3, dropLast: true, shuffle: false });
    expect([sampler.numSamples, sampler.totalSize]).toEqual([3, 9]);
    expect(shards(10, 3, { shuffle: false, dropLast: true })).toEqual([
      [0, 3, 6],
      [1, 4, 7],
      [2, 5, 8],
    ]);
  });

  it('shuffles the same way on every rank: disjoint shards that cover the dataset', () => {
    const parts = shards(1000, 4, { seed: 42 }, 3);
    const all = parts.flat().sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(parts[0]).not.toEqual(Array.from({ length: 250 }, (_, k) => k * 4));
    // Same seed and epoch: same shard; another epoch or seed: another order.
    expect(shards(1000, 4, { seed: 42 }, 3)).toEqual(parts);
    expect(shards(1000, 4, { seed: 42 }, 4)[0]).not.toEqual(parts[0]);
    expect(shards(1000, 4, { seed: 43 }, 3)[0]).not.toEqual(parts[0]);
  });

  it('rejects a rank outside the replicas', () => {
    expect(() => new DistributedSampler(10, { numReplicas: 2, rank: 2 })).toThrow(
      'Expected rank in [0, 1] for 2 replicas, found 2.',
    );
  });
});
