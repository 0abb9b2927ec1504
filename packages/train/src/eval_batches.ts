import type { Batch, DataLoader, ImageDataset, SkippedFile } from '@thor-ts/data';

/** What `evaluate` reads of a loader: its batches for one pass, their count, the files it skipped. */
export interface EvalSource {
  readonly dataset: ImageDataset;
  readonly numBatches: number;
  readonly skipped: readonly SkippedFile[];
  epoch(epoch: number): AsyncIterable<Batch>;
}

/**
 * An unshuffled, deterministic eval loader that keeps the batches of its first full pass in
 * memory and hands the same batches out on every later pass instead of reading and decoding the
 * files again (evaluating Fashion-MNIST's 10,000 val images after each epoch otherwise decodes
 * them every time: about half of the evaluation's CPU time). It keeps them only while they fit
 * in `maxBytes` (default 256 MiB of pixels; ImageNet's val shards do not, and stay streamed) and
 * only when the pass skipped no file, so every pass scores exactly the images the loader gives.
 */
export class EvalBatches implements EvalSource {
  private cached: Batch[] | undefined;
  private cacheable = true;

  constructor(
    private readonly loader: DataLoader,
    private readonly maxBytes = 256 * 2 ** 20,
  ) {}

  get dataset(): ImageDataset {
    return this.loader.dataset;
  }

  get numBatches(): number {
    return this.loader.numBatches;
  }

  get skipped(): readonly SkippedFile[] {
    return this.loader.skipped;
  }

  /** Whether the next pass comes from memory. */
  get inMemory(): boolean {
    return this.cached !== undefined;
  }

  async *epoch(epoch: number): AsyncGenerator<Batch, void, undefined> {
    if (this.cached !== undefined) {
      yield* this.cached;
      return;
    }
    const skippedBefore = this.loader.skipped.length;
    let kept: Batch[] | undefined = this.cacheable ? [] : undefined;
    let bytes = 0;
    let count = 0;
    for await (const batch of this.loader.epoch(epoch)) {
      count += 1;
      if (kept !== undefined) {
        bytes += batch.images.byteLength;
        if (bytes <= this.maxBytes) kept.push(batch);
        else {
          kept = undefined;
          this.cacheable = false;
        }
      }
      yield batch;
    }
    // Only a whole pass with nothing skipped is kept (a caller that stopped early keeps none).
    if (kept !== undefined && count === this.numBatches) {
      if (this.loader.skipped.length === skippedBefore) this.cached = kept;
      else this.cacheable = false;
    }
  }
}
