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
 * THOR's refresh on every rank (call it on every rank, at the same steps, with this step's taps): this rank's factors averaged over the ring; the layers to refresh
 * chosen from them (the same choice everywhere, since every rank holds the same bytes); their
 * inversions split over the ranks, largest first to the least loaded (kfac-pytorch's greedy
 * assignment); and the inverses shared, so every rank installs all of them. With THOR's
 * `factorDecay`, the averaged factors first go into its running average, and only inverse steps
 * go on to invert (the averages).
 */
export async function refreshThor(
  thor: Thor,
  taps: { all(): LayerTap[] },
  ring: Collective,
  step: number,
): Promise<ThorReport> {
  const factors = thor.computeFactors(taps.all());
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

function disposePairs(pairs: Map<string, FactorPair>): void {
  for (const f of pairs.values()) tf.dispose([f.a, f.g]);
}
