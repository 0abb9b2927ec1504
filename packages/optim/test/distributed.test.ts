import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import { CurvatureTaps, resnetLight } from '@thor-ts/model';
import { describe, expect, it } from 'vitest';

import {
  assignInversions,
  flatten,
  meanFactors,
  refreshThor,
  softmaxCrossEntropy,
  Thor,
  unflatten,
  type Collective,
} from '../dist/index.js';

/** A seeded tiny ResNet's curvature taps after one forward/backward pass on a fixed batch. */
function tapsOfOneStep(batchSeed = 3): { taps: CurvatureTaps; dispose: () => void } {
  const model = resnetLight({ classes: 4, layers: [1, 1], widths: [8, 16], seed: 7 });
  const x = tf.randomNormal([6, 12, 12, 3], 0, 1, 'float32', batchSeed);
  const y = tf.tensor1d(
    [0, 1, 2, 3, 0, 1].map((c) => (c + batchSeed) % 4),
    'int32',
  );
  const taps = new CurvatureTaps();
  const { grads, value } = tf.variableGrads(
    () => softmaxCrossEntropy(model.forward(x, { training: true, taps }), y, 0.1),
    [...model.parameters()].map(([, e]) => e.variable as tf.Variable),
  );
  tf.dispose([x, y, value, ...Object.values(grads)]);
  return { taps, dispose: () => (taps.dispose(), model.dispose()) };
}

/**
 * `n` ranks of a process group in this process: each `allReduce` waits for every rank's buffer,
 * then gives each the element-wise sum (or mean) taken in rank order.
 */
function localGroup(n: number): Collective[] {
  let round: { bufs: Float32Array[]; done: ((b: Float32Array) => void)[] } = { bufs: [], done: [] };
  return Array.from({ length: n }, (_, rank) => ({
    rank,
    worldSize: n,
    allReduce: (buf: Float32Array, { op }: { op: 'sum' | 'mean' }) =>
      new Promise<Float32Array>((resolve) => {
        round.bufs[rank] = buf;
        round.done[rank] = resolve;
        if (round.done.filter(Boolean).length < n) return;
        const out = new Float32Array(buf.length);
        for (const b of round.bufs) for (let i = 0; i < out.length; i++) out[i] = out[i]! + b[i]!;
        if (op === 'mean') for (let i = 0; i < out.length; i++) out[i] = out[i]! / n;
        const { done } = round;
        round = { bufs: [], done: [] };
        for (const d of done) d(out.slice());
      }),
  }));
}

describe("THOR's refresh over a process group", () => {
  it('splits the inversions over the ranks and installs the same inverses as a local refresh', async () => {
    await initBackend({ backend: 'cpu' });
    const options = { damping: 0.03, blockSize: 8, refresh: { every: 1 } };
    const local = new Thor(options);
    const one = tapsOfOneStep();
    local.update(one.taps.all(), 0);
    const expected = local.state().tensors;

    const group = localGroup(2);
    const thors = [new Thor(options), new Thor(options)];
    const steps = [tapsOfOneStep(), tapsOfOneStep()];
    try {
      // Both ranks saw the same batch, so the averaged factors are the local ones, bit for bit.
      const reports = await Promise.all(
        group.map((rank, r) => refreshThor(thors[r]!, steps[r]!.taps, rank, 0)),
      );
      expect(reports[0]!.refreshed.length).toBeGreaterThan(2);
      const factors = local.computeFactors(one.taps.all());
      const costs = new Map(
        [...factors].map(([l, f]) => [l, f.a.shape[0]! * 512 + f.g.shape[0]! * 512]),
      );
      expect(new Set(assignInversions(costs, 2).values())).toEqual(new Set([0, 1]));
      tf.dispose([...factors.values()].flatMap((f) => [f.a, f.g]));
      for (const thor of thors) {
        const got = thor.state().tensors;
        expect(Object.keys(got).sort()).toEqual(Object.keys(expected).sort());
        for (const [k, t] of Object.entries(expected)) {
          expect(Array.from(got[k]!.dataSync()), k).toEqual(Array.from(t.dataSync()));
        }
      }
    } finally {
      for (const s of [one, ...steps]) s.dispose();
      for (const t of [local, ...thors]) t.dispose();
    }
  });
});

describe("one rank's micro-batches", () => {
  it('give the inverses that as many ranks, one micro-batch each, would', async () => {
    await initBackend({ backend: 'cpu' });
    const options = { damping: 0.03, blockSize: 8, refresh: { every: 1 } };
    const batches = [tapsOfOneStep(3), tapsOfOneStep(11)];
    const ranks = [new Thor(options), new Thor(options)];
    const single = new Thor(options);
    try {
      const group = localGroup(2);
      await Promise.all(group.map((rank, r) => refreshThor(ranks[r]!, batches[r]!.taps, rank, 0)));
      const alone = { rank: 0, worldSize: 1, allReduce: async (b: Float32Array) => b };
      const factors = meanFactors(batches.map((b) => single.computeFactors(b.taps.all())));
      const report = await refreshThor(single, factors, alone, 0);
      expect(report.refreshed.length).toBeGreaterThan(2);
      const expected = ranks[0]!.state().tensors;
      const got = single.state().tensors;
      expect(Object.keys(got).sort()).toEqual(Object.keys(expected).sort());
      for (const [k, t] of Object.entries(expected)) {
        const a = got[k]!.dataSync();
        const e = t.dataSync();
        for (let i = 0; i < e.length; i++) expect(a[i]!, `${k}[${i}]`).toBeCloseTo(e[i]!, 4);
      }
      // The two batches differ, so the mean is not either one's factors.
      const lone = new Thor(options);
      await refreshThor(lone, batches[0]!.taps, alone, 0);
      const differs = Object.entries(lone.state().tensors).some(([k, t]) =>
        t.dataSync().some((v, i) => Math.abs(v - got[k]!.dataSync()[i]!) > 1e-3),
      );
      expect(differs).toBe(true);
      lone.dispose();
    } finally {
      for (const b of batches) b.dispose();
      for (const t of [single, ...ranks]) t.dispose();
    }
  });

  it('must all have factors of the same layers', async () => {
    await initBackend({ backend: 'cpu' });
    const thor = new Thor({ damping: 0.03, blockSize: 8, refresh: { every: 1 } });
    const one = tapsOfOneStep(3);
    try {
      const full = thor.computeFactors(one.taps.all());
      const part = thor.computeFactors(one.taps.all().slice(1));
      expect(() => meanFactors([full, part])).toThrow(
        /has factors in micro-batch 0 but none in micro-batch 1/,
      );
      expect(() => meanFactors([])).toThrow(/expected at least one/);
      tf.dispose([...full.values(), ...part.values()].flatMap((f) => [f.a, f.g]));
    } finally {
      one.dispose();
      thor.dispose();
    }
  });
});

describe('flattening for collectives', () => {
  it('round-trips named tensors with extra values', async () => {
    await initBackend({ backend: 'cpu' });
    const t = new Map<string, tf.Tensor>([
      ['a', tf.tensor2d([1, 2, 3, 4], [2, 2])],
      ['b', tf.tensor1d([5])],
    ]);
    const flat = flatten(['b', 'a'], t, [9]);
    expect(Array.from(flat)).toEqual([5, 1, 2, 3, 4, 9]);
    const { tensors, extra } = unflatten(['b', 'a'], t, flat);
    expect(tensors.get('a')?.shape).toEqual([2, 2]);
    expect(Array.from(tensors.get('a')!.dataSync())).toEqual([1, 2, 3, 4]);
    expect(Array.from(extra)).toEqual([9]);
  });

  it.each(['wasm', 'cpu'] as const)(
    'refills a buffer of the right length, whose unflattened tensors keep their values (%s)',
    async (backend) => {
      await initBackend({ backend });
      const t = new Map<string, tf.Tensor>([
        ['a', tf.tensor2d([1, 2, 3, 4], [2, 2])],
        ['b', tf.tensor1d([5])],
      ]);
      const first = flatten(['a', 'b'], t, [9]);
      const { tensors } = unflatten(['a', 'b'], t, first);
      const kept = tf.variable(tensors.get('b')!, false);
      const again = flatten(['b', 'a'], t, [8], first);
      expect(again).toBe(first);
      expect(Array.from(again)).toEqual([5, 1, 2, 3, 4, 8]);
      // Made from the buffer before it was refilled: their own values still.
      expect(Array.from(tensors.get('a')!.dataSync())).toEqual([1, 2, 3, 4]);
      expect(Array.from(kept.dataSync())).toEqual([5]);
      // A buffer of another length is not written: a new one comes back.
      const other = new Float32Array(3);
      const fresh = flatten(['a'], t, [], other);
      expect(fresh).not.toBe(other);
      expect(Array.from(other)).toEqual([0, 0, 0]);
      tf.dispose([...t.values(), ...tensors.values(), kept]);
    },
  );
});
