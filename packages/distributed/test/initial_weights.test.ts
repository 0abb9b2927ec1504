import { describe, expect, it } from 'vitest';

import { fetchInitialWeights } from '../dist/index.js';
import { TOKEN, values, withRing } from './with_ring.js';

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('initial weights held by the coordinator', () => {
  it('reach every rank, also one that asks before they are published and one restarted later', async () => {
    // 100 003 floats: several 64 KiB pieces and a short last one.
    const weights = values(100_003, 42);
    const out = await withRing(4, async (ring, coordinator) => {
      let got: Float32Array;
      if (ring.rank === 2) {
        await new Promise((r) => setTimeout(r, 100)); // rank 3 asks before this
        await ring.publishInitial(weights);
        got = await ring.fetchInitial();
      } else {
        got = await ring.fetchInitial();
      }
      // Everyone moves on: a training step.
      const step = await ring.allReduce(new Float32Array(1000).fill(1));
      // Later, a worker restarted alone (not in the ring) fetches them from the coordinator.
      const restarted =
        ring.rank === 1
          ? await fetchInitialWeights({ coordinator, token: TOKEN, rank: 1, log: () => undefined })
          : undefined;
      const again =
        ring.rank === 0
          ? await ring.publishInitial(values(10, 1)).catch((e: Error) => e)
          : undefined;
      return { got, step, restarted, again };
    });
    for (const { got, step } of out) {
      expect(bytes(got).equals(bytes(weights))).toBe(true);
      expect(step[0]).toBe(4);
    }
    expect(bytes(out[1]?.restarted as Float32Array).equals(bytes(weights))).toBe(true);
    expect(String(out[0]?.again)).toMatch(
      /rank 0 publishes initial weights, but rank 2 already published them \(100003 elements\)/,
    );
  });

  it('refuses a reader without the job token', async () => {
    await withRing(2, async (ring, coordinator) => {
      if (ring.rank === 0) {
        await expect(
          fetchInitialWeights({
            coordinator,
            token: 'wrong',
            timeoutMs: 5000,
            log: () => undefined,
          }),
        ).rejects.toThrow(/connection closed .*4001/);
      }
    });
  });
});
