import { describe, expect, it } from 'vitest';

import { values, withRing } from './with_ring.js';

/** The float64 sum of every rank's input, and the sum of magnitudes that bounds rounding error. */
function reference(length: number, n: number): { sum: Float64Array; abs: Float64Array } {
  const sum = new Float64Array(length);
  const abs = new Float64Array(length);
  for (let r = 0; r < n; r++) {
    const x = values(length, 1000 + r);
    for (let i = 0; i < length; i++) {
      sum[i] = (sum[i] as number) + (x[i] as number);
      abs[i] = (abs[i] as number) + Math.abs(x[i] as number);
    }
  }
  return { sum, abs };
}

/** Largest |got − want| / (n · 2⁻²⁴ · Σ|x|): a float32 sum of n terms stays below 1 by this bound. */
function errorRatio(got: Float32Array, want: Float64Array, abs: Float64Array, n: number): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const bound = n * 2 ** -24 * (abs[i] as number) + 1e-30;
    worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)) / bound);
  }
  return worst;
}

const sameBytes = (a: Float32Array, b: Float32Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );

describe('allReduce on 8 loopback workers', () => {
  // 0 and 1: degenerate; 7, 1001: fewer or not divisible by 8; 16385, 3e6 + 5: ring path, several
  // segments per chunk (the small ones take halving-doubling).
  const sizes = [0, 1, 7, 1001, 16_385, 3_000_005];

  it.each(sizes)(
    'sums %i random floats like float64 does, with identical bytes on every rank',
    async (length) => {
      const n = 8;
      const { sum, abs } = reference(length, n);
      const out = await withRing(n, (ring) => ring.allReduce(values(length, 1000 + ring.rank)));
      for (const got of out) {
        expect(got.length).toBe(length);
        expect(errorRatio(got, sum, abs, n)).toBeLessThan(1);
        expect(sameBytes(got, out[0] as Float32Array)).toBe(true);
      }
    },
  );

  it('averages with op mean and runs many collectives in call order', async () => {
    // Rank r contributes r + 1 everywhere: the sum is 36 and the mean 4.5, both exact in float32.
    const out = await withRing(8, async (ring) => {
      const a = ring.allReduce(new Float32Array(5000).fill(ring.rank + 1), { op: 'mean' });
      const b = ring.allReduce(new Float32Array(3).fill(ring.rank + 1), { bucket: 1 });
      return [await a, await b];
    });
    for (const [a, b] of out) {
      expect(Array.from(new Set(a))).toEqual([4.5]);
      expect(Array.from(b as Float32Array)).toEqual([36, 36, 36]);
    }
  });

  it('works with 3 ranks (no halving-doubling) and with 1', async () => {
    // 3 ranks: 1 + 2 + 3 = 6 in every element; 1 rank: the input itself.
    const three = await withRing(3, (r) => r.allReduce(new Float32Array(10).fill(r.rank + 1)));
    for (const x of three) expect(Array.from(x)).toEqual(new Array(10).fill(6));
    const one = await withRing(1, (r) => r.allReduce(new Float32Array([1.5, -2]), { op: 'mean' }));
    expect(Array.from(one[0] as Float32Array)).toEqual([1.5, -2]);
  });

  it('carries float16 on the wire: close to the float64 sum, identical bytes everywhere', async () => {
    const n = 8;
    const length = 200_003;
    const { sum } = reference(length, n);
    const out = await withRing(n, (ring) =>
      ring.allReduce(values(length, 1000 + ring.rank), { wire: 'float16' }),
    );
    // Each of the 7 hops and the final copy round to 11 significant bits: |sum| ≤ 8, so the error
    // stays below 8 · 8 · 2⁻¹¹ ≈ 0.03.
    for (const got of out) {
      let worst = 0;
      for (let i = 0; i < length; i++) {
        worst = Math.max(worst, Math.abs((got[i] as number) - (sum[i] as number)));
      }
      expect(worst).toBeLessThan(0.03);
      expect(sameBytes(got, out[0] as Float32Array)).toBe(true);
    }
  });
});
