import { describe, expect, it } from 'vitest';

import { values, withRing } from './with_ring.js';

describe('broadcast, allGather and barrier on loopback workers', () => {
  it('broadcasts the root rank’s weights to every rank (8 ranks, root 5, 2.5 M elements)', async () => {
    const weights = values(2_500_001, 7);
    const out = await withRing(8, (ring) =>
      ring.broadcast(ring.rank === 5 ? weights.slice() : new Float32Array(weights.length), 5),
    );
    for (const got of out)
      expect(Buffer.from(got.buffer).equals(Buffer.from(weights.buffer))).toBe(true);
  });

  it('gathers every rank’s part in rank order (8 ranks, 3 and 100 001 elements each)', async () => {
    // Rank r sends [r, r + 0.5, r + 0.25]: the result is those triples for r = 0 … 7.
    const want = Array.from({ length: 8 }, (_, r) => [r, r + 0.5, r + 0.25]).flat();
    const out = await withRing(8, async (ring) => {
      const r = ring.rank;
      const small = await ring.allGather(new Float32Array([r, r + 0.5, r + 0.25]));
      const big = await ring.allGather(values(100_001, r), 1);
      return { small, big };
    });
    for (const { small, big } of out) {
      expect(Array.from(small)).toEqual(want);
      for (let r = 0; r < 8; r++) {
        const part = big.subarray(r * 100_001, (r + 1) * 100_001);
        const bytes = Buffer.from(part.buffer, part.byteOffset, part.byteLength);
        expect(bytes.equals(Buffer.from(values(100_001, r).buffer))).toBe(true);
      }
    }
  });

  it('releases a barrier only when every rank reached it', async () => {
    // Rank 3 arrives last, after a marker is set: every rank must see the marker after the barrier.
    let marker = false;
    const seen = await withRing(4, async (ring) => {
      if (ring.rank === 3) {
        await new Promise((r) => setTimeout(r, 50));
        marker = true;
      }
      await ring.barrier();
      return marker;
    });
    expect(seen).toEqual([true, true, true, true]);
  });
});
