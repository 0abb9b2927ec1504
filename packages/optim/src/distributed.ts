import * as tf from '@tensorflow/tfjs-core';
import type { LayerTap } from '@thor-ts/model';

import { assignInversions } from './assign.js';
import { flatten, unflatten } from './flat.js';
import type { FactorPair, Thor, ThorReport } from './thor.js';

/**
 * What THOR's distributed refresh needs of a process group (torch.distributed's, in miniature):
 * this process's rank among `worldSize`, and an all-reduce of a float32 buffer that returns the
 * element-wise sum or mean over the ranks, the same bytes on every rank. @thor-ts/distributed's
 * `Ring` is one; a single process is `{ rank: 0, worldSize: 1, allReduce: async (b) => b }`.
 */
export interface Collective {
  readonly rank: number;
  readonly worldSize: number;
  allReduce(buf: Float32Array, options: { op: 'sum' | 'mean' }): Promise<Float32Array>;
}

/**
 * THOR's refresh on every rank (call it on every rank, at the same steps): this rank's factors,
 * from this step's taps or already computed (`meanFactors` of its micro-batches' factors, which
 * the refresh then disposes), averaged over the ring; the layers to refresh chosen from them (the
 * same choice everywhere, since every rank holds the same bytes); their inversions split over the
 * ranks, largest first to the least loaded (kfac-pytorch's greedy assignment); and the inverses
 * shared, so every rank installs all of them. With THOR's `factorDecay`, the averaged factors
 * first go into its running average, and only inverse steps go on to invert (the averages).
 */
export async function refreshThor(
  thor: Thor,
  curvature: { all(): LayerTap[] } | Map<string, FactorPair>,
  ring: Collective,
  step: number,
): Promise<ThorReport> {
  const factors = curvature instanceof Map ? curvature : thor.computeFactors(curvature.all());
  let averaged = await allReducePairs(factors, ring, 'mean');
  disposePairs(factors);
  const report: ThorReport = { step, refreshed: [], retried: [], nonFinite: [], stopped: [] };
  if (thor.averaging) {
    // kfac-pytorch's running average: every rank folds in the same bytes; inverses only on
    // inverse steps, from the averages.
    const running = thor.accumulate(averaged);
    disposePairs(averaged);
    if (!thor.wantsInverses(step)) {
      disposePairs(running);
      return report;
    }
    averaged = running;
  }
  const chosen = thor.selectRefresh(step, averaged, report);
  const costs = new Map(chosen.map((l) => [l, cost(averaged.get(l) as FactorPair)]));
  const owner = assignInversions(costs, ring.worldSize);
  const mine = chosen.filter((l) => owner.get(l) === ring.rank);
  const local = thor.invert(mine, averaged, step, report);
  let inverses = local;
  if (ring.worldSize > 1) {
    // Each rank fills in the inverses it computed and zeros elsewhere; the sum is then every
    // inverse, exactly (x + 0 = x).
    const parts = new Map<string, FactorPair>(
      chosen.map((l) => {
        const f = averaged.get(l) as FactorPair;
        return [l, local.get(l) ?? { a: tf.zerosLike(f.a), g: tf.zerosLike(f.g) }];
      }),
    );
    inverses = await allReducePairs(parts, ring, 'sum');
    disposePairs(parts);
  }
  thor.setInverses(inverses);
  disposePairs(averaged);
  report.refreshed = chosen;
  return report;
}

/** Every layer's pair of factors all-reduced in one collective: new tensors, same shapes. */
async function allReducePairs(
  pairs: Map<string, FactorPair>,
  ring: Collective,
  op: 'sum' | 'mean',
): Promise<Map<string, FactorPair>> {
  const layers = [...pairs.keys()];
  const parts = new Map<string, tf.Tensor>();
  for (const [layer, f] of pairs) {
    parts.set(`${layer}/a`, f.a);
    parts.set(`${layer}/g`, f.g);
  }
  const keys = [...parts.keys()];
  const reduced = await ring.allReduce(flatten(keys, parts), { op });
  const { tensors } = unflatten(keys, parts, reduced);
  return new Map(
    layers.map((l) => [
      l,
      { a: tensors.get(`${l}/a`) as tf.Tensor3D, g: tensors.get(`${l}/g`) as tf.Tensor3D },
    ]),
  );
}

/** Cholesky of a factor's blocks: Σ b³ over both factors. */
function cost(f: FactorPair): number {
  const [na, ba] = f.a.shape;
  const [ng, bg] = f.g.shape;
  return na * ba ** 3 + ng * bg ** 3;
}

/**
 * The element-wise mean of several micro-batches' factors (`thor.computeFactors` of each one's
 * taps, all of the same layers): what one rank passes to `refreshThor` when it trains its share of
 * a step in micro-batches, so that k micro-batches on one rank give the factors k ranks would.
 * New tensors; the inputs are disposed.
 */
export function meanFactors(parts: Map<string, FactorPair>[]): Map<string, FactorPair> {
  if (parts.length === 0)
    throw new Error('meanFactors: expected at least one map of factors, found none');
  const [first, ...rest] = parts as [Map<string, FactorPair>, ...Map<string, FactorPair>[]];
  if (rest.length === 0) return first;
  const out = new Map<string, FactorPair>();
  for (const [layer, f] of first) {
    const others = rest.map((m, i) => {
      const o = m.get(layer);
      if (o === undefined) {
        throw new Error(
          `meanFactors: layer '${layer}' has factors in micro-batch 0 but none in micro-batch ${i + 1}`,
        );
      }
      return o;
    });
    const mean = (pick: (p: FactorPair) => tf.Tensor3D): tf.Tensor3D =>
      tf.tidy(() => tf.div(tf.addN([pick(f), ...others.map(pick)]), parts.length));
    out.set(layer, { a: mean((p) => p.a), g: mean((p) => p.g) });
  }
  for (const m of parts) disposePairs(m);
  return out;
}

function disposePairs(pairs: Map<string, FactorPair>): void {
  for (const f of pairs.values()) tf.dispose([f.a, f.g]);
}
