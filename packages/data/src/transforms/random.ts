/** Mixes a 32-bit integer (the finalizer of MurmurHash3 with constants from hash-prospector). */
function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A small seeded random number generator (sfc32). Each sample of each epoch gets its own stream,
 * `Random.forSample(seed, epoch, index)`, so augmentations do not depend on the order in which
 * images are decoded or on how many are decoded at once.
 */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = mix32(seed ^ 0x9e3779b9);
    this.b = mix32(this.a ^ 0x85ebca6b);
    this.c = mix32(this.b ^ 0xc2b2ae35);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** The stream for sample `index` of `epoch` in a run seeded with `seed`. */
  static forSample(seed: number, epoch: number, index: number): Random {
    return new Random(mix32(mix32(mix32(seed) ^ epoch) + index));
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** A float in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** An integer in [low, high), like `torch.randint(low, high)`. */
  int(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low));
  }
}
