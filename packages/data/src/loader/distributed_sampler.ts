import { Random } from '../transforms/random.js';

export interface DistributedSamplerOptions {
  /** Number of processes sharing the dataset. Default 1. */
  numReplicas?: number;
  /** This process's index in [0, numReplicas). Default 0. */
  rank?: number;
  /** Shuffle every epoch (the same permutation on every rank). Default true. */
  shuffle?: boolean;
  /** Shared by all ranks: the permutation of epoch e is drawn from seed + e. Default 0. */
  seed?: number;
  /** Drop the tail so shards are equal, instead of padding by repeating the first indices. */
  dropLast?: boolean;
}

/**
 * PyTorch's `DistributedSampler`: each epoch, every rank draws the same permutation from
 * `seed + epoch`, pads it by wrapping around (or cuts it, with `dropLast`) to a multiple of
 * `numReplicas`, and takes every `numReplicas`-th index from `rank` on. Shards are disjoint (up to
 * the padding) and all have {@link numSamples} indices, so every rank runs as many batches.
 */
export class DistributedSampler {
  readonly numReplicas: number;
  readonly rank: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  /** Indices per rank per epoch. */
  readonly numSamples: number;
  /** numSamples × numReplicas. */
  readonly totalSize: number;

  constructor(
    readonly length: number,
    options: DistributedSamplerOptions = {},
  ) {
    this.numReplicas = options.numReplicas ?? 1;
    this.rank = options.rank ?? 0;
    this.shuffle = options.shuffle ?? true;
    this.seed = options.seed ?? 0;
    this.dropLast = options.dropLast ?? false;
    if (!Number.isInteger(this.numReplicas) || this.numReplicas < 1) {
      throw new RangeError(`Expected numReplicas ≥ 1, found ${this.numReplicas}.`);
    }
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.numReplicas) {
      throw new RangeError(
        `Expected rank in [0, ${this.numReplicas - 1}] for ${this.numReplicas} replicas, found ${this.rank}.`,
      );
    }
    if (length < 1) throw new RangeError(`Expected a non-empty dataset, found ${length} samples.`);
    this.numSamples =
      this.dropLast && length % this.numReplicas !== 0
        ? Math.ceil((length - this.numReplicas) / this.numReplicas)
        : Math.ceil(length / this.numReplicas);
    this.totalSize = this.numSamples * this.numReplicas;
  }

  /** This rank's dataset indices for `epoch`, in order. */
  indices(epoch: number): Int32Array {
    const n = this.length;
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    if (this.shuffle) {
      const random = new Random((this.seed + epoch) | 0);
      for (let i = n - 1; i > 0; i--) {
        const j = random.int(0, i + 1);
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
    }
    const shard = new Int32Array(this.numSamples);
    for (let k = 0; k < this.numSamples; k++) {
      // Position in the padded (wrapped around) or cut permutation.
      shard[k] = order[(this.rank + k * this.numReplicas) % n]!;
    }
    return shard;
  }
}
