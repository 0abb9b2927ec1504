import { describe, expect, it } from 'vitest';

import { assignBuckets, type Ring } from '../dist/index.js';
import { values, withRing } from './with_ring.js';

const sameBytes = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );

describe('assignBuckets', () => {
  it('fills buckets in reverse parameter order up to the cap, bucket 0 up to its own cap', () => {
    // Caps of 600 and 1000 floats: parameter 3 (400) alone, since 400 + 300 > 600; then 300 + 200
    // + 100 = 600 ≤ 1000 in one bucket.
    const b = assignBuckets([100, 200, 300, 400], 4000, 2400);
    expect(b.map((x) => x.params)).toEqual([[3], [2, 1, 0]]);
    expect(b.map((x) => x.length)).toEqual([400, 600]);
    // A parameter over the cap gets a bucket of its own.
    expect(assignBuckets([2000, 10], 4000, 4000).map((x) => x.params)).toEqual([[1], [0]]);
  });

  it('uses DDP’s defaults: 1 MiB for bucket 0, 25 MiB after', async () => {
    // 262 144 floats are exactly 1 MiB; 300 000 + 1 048 576 floats = 5.4 MB stay under 25 MiB.
    await withRing(1, async (ring) => {
      const r = ring.reducer([1 << 20, 300_000, 262_144]);
      expect(r.buckets.map((x) => x.params)).toEqual([[2], [1, 0]]);
    });
  });
});

describe('GradientReducer on 4 loopback workers', () => {
  const sizes = [3, 70_000, 5, 40_000, 1, 20_000];
  // Caps of 20 000 floats for bucket 0 and 50 000 after: [5] (20 000), [4, 3, 2] (40 006), then
  // parameter 1 alone (70 000, over the cap) and parameter 0 (3, since 70 003 > 50 000).
  const caps = { capBytes: 200_000, firstCapBytes: 80_000 };
  const grad = (ring: Ring, i: number, micro = 0): Float32Array =>
    values(sizes[i] as number, 1 + 100 * ring.rank + 10 * i + micro);

  /** Float64 mean over 4 ranks of each parameter's gradient summed over `micro` micro-batches. */
  const reference = (micro: number): Float64Array[] =>
    sizes.map((s, i) => {
      const out = new Float64Array(s);
      for (let r = 0; r < 4; r++) {
        for (let m = 0; m < micro; m++) {
          const g = values(s, 1 + 100 * r + 10 * i + m);
          for (let j = 0; j < s; j++) out[j] = (out[j] as number) + (g[j] as number) / 4;
        }
      }
      return out;
    });

  const worst = (got: Float32Array[], want: Float64Array[]): number => {
    let w = 0;
    got.forEach((g, i) => {
      for (let j = 0; j < g.length; j++) {
        w = Math.max(w, Math.abs((g[j] as number) - ((want[i] as Float64Array)[j] as number)));
      }
    });
    return w;
  };

  it('averages every gradient like float64 does, with identical bytes on every rank', async () => {
    const out = await withRing(4, async (ring) => {
      const reducer = ring.reducer(sizes, caps);
      expect(reducer.buckets.map((b) => b.params)).toEqual([[5], [4, 3, 2], [1], [0]]);
      const before = ring.sequence;
      for (let i = sizes.length - 1; i >= 0; i--) reducer.ready(i, grad(ring, i));
      const reduced = await reducer.flush();
      // One all-reduce per bucket, each carrying its bucket index.
      expect(ring.sequence - before).toBe(4);
      return reduced.map((g) => g.slice());
    });
    // Values in [-1, 1): 4 terms, each exact in float64, rounded to float32 at most 4 times.
    for (const got of out) {
      expect(worst(got, reference(1))).toBeLessThan(4 * 2 ** -23);
      got.forEach((g, i) =>
        expect(sameBytes(g, (out[0] as Float32Array[])[i] as Float32Array)).toBe(true),
      );
    }
  });

  it('starts a bucket’s all-reduce as soon as its gradients are ready, before later ones exist', async () => {
    // Rank r's gradients are all r + 1, so bucket 0 sums to 1 + 2 + 3 + 4 = 10. Every rank marks
    // bucket 0's parameter, then waits for that bucket to be reduced before marking the others:
    // this ends only if the all-reduce started on ready(), not on flush().
    const out = await withRing(4, async (ring) => {
      let bucket0: (data: Float32Array) => void = () => undefined;
      const reduced0 = new Promise<Float32Array>((resolve) => (bucket0 = resolve));
      const reducer = ring.reducer(sizes, {
        ...caps,
        op: 'sum',
        onReduced: (b, data) => b.index === 0 && bucket0(data.slice()),
      });
      const ones = (i: number): Float32Array =>
        new Float32Array(sizes[i] as number).fill(ring.rank + 1);
      reducer.ready(5, ones(5));
      const first = await Promise.race([
        reduced0,
        new Promise<never>((_, reject) =>
          setTimeout(
            () => reject(new Error('bucket 0 was not reduced within 20 s of ready()')),
            20_000,
          ).unref(),
        ),
      ]);
      for (let i = 4; i >= 0; i--) reducer.ready(i, ones(i));
      const all = await reducer.flush();
      return { first, all };
    });
    for (const { first, all } of out) {
      expect(Array.from(new Set(first))).toEqual([10]);
      for (const g of all) expect(Array.from(new Set(g))).toEqual(g.length > 0 ? [10] : []);
    }
  });

  it('accumulates micro-batches locally in noSync and all-reduces them once', async () => {
    const out = await withRing(4, async (ring) => {
      const reducer = ring.reducer(sizes, caps);
      const before = ring.sequence;
      for (let m = 0; m < 2; m++) {
        await reducer.noSync(() => {
          for (let i = sizes.length - 1; i >= 0; i--) reducer.ready(i, grad(ring, i, m));
        });
      }
      // No collective ran while synchronization was off.
      expect(ring.sequence).toBe(before);
      for (let i = sizes.length - 1; i >= 0; i--) reducer.ready(i, grad(ring, i, 2));
      const reduced = (await reducer.flush()).map((g) => g.slice());
      expect(ring.sequence - before).toBe(4);
      // The next step starts from zero again: one micro-batch only.
      for (let i = sizes.length - 1; i >= 0; i--) reducer.ready(i, grad(ring, i, 0));
      const next = (await reducer.flush()).map((g) => g.slice());
      return { reduced, next };
    });
    // Sums of 12 terms in [-1, 1) divided by 4: float32 rounding stays far below 1e-5.
    for (const { reduced, next } of out) {
      expect(worst(reduced, reference(3))).toBeLessThan(1e-5);
      expect(worst(next, reference(1))).toBeLessThan(4 * 2 ** -23);
    }
  });

  it('names the parameter and both lengths when a gradient does not fit, and a double mark', async () => {
    await withRing(1, async (ring) => {
      const reducer = ring.reducer([4, 2]);
      expect(() => reducer.ready(1, new Float32Array(3))).toThrow(
        /parameter 1 has 2 elements, its gradient has 3/,
      );
      expect(() => reducer.ready(7, new Float32Array(3))).toThrow(/parameter index below 2, got 7/);
      reducer.ready(0, new Float32Array(4));
      expect(() => reducer.ready(0, new Float32Array(4))).toThrow(
        /parameter 0 \(bucket 0\) was already marked ready/,
      );
      await expect(reducer.flush()).rejects.toThrow(/1 of 2 were not: 1/);
      reducer.ready(1, new Float32Array([1, 2]));
      const [a, b] = await reducer.flush();
      expect(Array.from(a as Float32Array)).toEqual([0, 0, 0, 0]);
      expect(Array.from(b as Float32Array)).toEqual([1, 2]);
    });
  });
});
