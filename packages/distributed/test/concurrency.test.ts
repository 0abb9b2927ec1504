import { describe, expect, it } from 'vitest';

import { values, withRing } from './with_ring.js';

describe('collectives issued without awaiting', () => {
  it('run concurrently: a small all-reduce called after a large one finishes first', async () => {
    // 8 ranks, 2 M floats (ring, 14 steps of 1 MB) then 4 floats (halving-doubling, 6 steps, mostly
    // over other links). Were they run one after another, the small one could only end last.
    const out = await withRing(8, async (ring) => {
      const order: string[] = [];
      const big = ring.allReduce(new Float32Array(2_000_000).fill(1), { bucket: 0 });
      const small = ring.allReduce(new Float32Array(4).fill(ring.rank), { bucket: 1 });
      const [b, s] = await Promise.all([
        big.then((x) => (order.push('big'), x)),
        small.then((x) => (order.push('small'), x)),
      ]);
      return { order, b, s };
    });
    for (const { order, b, s } of out) {
      expect(order).toEqual(['small', 'big']);
      expect(Array.from(new Set(b))).toEqual([8]);
      expect(Array.from(s)).toEqual([28, 28, 28, 28]); // 0 + 1 + … + 7
    }
  });

  it('keep call order on one buffer: the second all-reduce sums the first one’s result', async () => {
    // Rank r contributes r + 1: the first sum is 1 + … + 4 = 10 everywhere, the second 4 · 10.
    // Buckets of one 300 000-float buffer, and a broadcast over the whole of it, keep their order
    // too: the broadcast from rank 3 carries the bucket sums.
    const out = await withRing(4, async (ring) => {
      const buf = new Float32Array(300_000).fill(ring.rank + 1);
      const first = ring.allReduce(buf);
      const second = ring.allReduce(buf, { bucket: 1 });
      const lo = ring.allReduce(buf.subarray(0, 1000), { bucket: 2 });
      const hi = ring.allReduce(buf.subarray(1000), { bucket: 3 });
      const bc = ring.broadcast(buf, 3);
      await Promise.all([first, second, lo, hi, bc]);
      return buf;
    });
    for (const buf of out) {
      expect(Array.from(new Set(buf))).toEqual([160]);
    }
  });

  it('sum many buckets of random values right, with identical bytes on every rank', async () => {
    // Twelve buffers of mixed sizes all in flight at once, mixing ring and halving-doubling.
    const sizes = [1, 700, 16_385, 3, 250_001, 64, 90_000, 5, 1_000_003, 17, 33_333, 2];
    const n = 8;
    const out = await withRing(n, (ring) =>
      Promise.all(
        sizes.map((s, b) => ring.allReduce(values(s, 1 + 50 * ring.rank + b), { bucket: b })),
      ),
    );
    sizes.forEach((s, b) => {
      const want = new Float64Array(s);
      const abs = new Float64Array(s);
      for (let r = 0; r < n; r++) {
        const x = values(s, 1 + 50 * r + b);
        for (let i = 0; i < s; i++) {
          want[i] = (want[i] as number) + (x[i] as number);
          abs[i] = (abs[i] as number) + Math.abs(x[i] as number);
        }
      }
      const first = (out[0] as Float32Array[])[b] as Float32Array;
      for (const got of out) {
        const g = got[b] as Float32Array;
        let worst = 0;
        for (let i = 0; i < s; i++) {
          const bound = n * 2 ** -24 * (abs[i] as number) + 1e-30;
          worst = Math.max(worst, Math.abs((g[i] as number) - (want[i] as number)) / bound);
        }
        expect(worst).toBeLessThan(1);
        expect(Buffer.from(g.buffer).equals(Buffer.from(first.buffer))).toBe(true);
      }
    });
  });
});
