import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

import type { Batch } from './batch.js';
import { ConcurrencyLimit } from './concurrency_limit.js';
import {
  decodePlanned,
  pillowResize,
  planView,
  type DecodeOptions,
} from '../decode/decode_image.js';
import { DecodePool } from '../decode/decode_pool.js';
import { DistributedSampler } from './distributed_sampler.js';
import type { ImageDataset } from '../datasets/image_dataset.js';
import { ImageDecodeError } from '../decode/image_decode_error.js';
import type { ImageView } from '../transforms/image_view.js';
import { IMAGENET_MEAN, IMAGENET_STD, normalizationTable } from '../transforms/normalize.js';
import type { Normalization } from '../transforms/normalize.js';
import { Random } from '../transforms/random.js';
import type { Transform } from '../transforms/transform.js';

/** A file left out of a batch under the `'skip'` policy. */
export interface SkippedFile {
  path: string;
  /** Index in the dataset, and its label. */
  index: number;
  label: number;
  reason: string;
  epoch: number;
}

export interface DataLoaderOptions {
  batchSize: number;
  /** The image pipeline; its output must have one size for all images (e.g. ends in a crop). */
  transforms: readonly Transform[];
  /** Which indices, in which order, per epoch. Default: one replica, shuffled from `seed`. */
  sampler?: DistributedSampler;
  /** Seeds the augmentations (and the default sampler). Default 0. */
  seed?: number;
  /** Drop a last, partial batch. Default false. */
  dropLast?: boolean;
  /**
   * Threads decoding baseline JPEGs in WebAssembly (csrc/jpeg.c: the same bytes as sharp and
   * Pillow, decoding only what the crop needs), like PyTorch's `num_workers`. Other files, and
   * every file when 0, go to sharp. Default: the number of cores.
   */
  workers?: number;
  /**
   * Images in flight at once (read, waiting for or on a decoding thread, or in sharp on libuv's
   * threads). Default: twice the workers, and at least the number of cores.
   */
  concurrency?: number;
  /** Batches prepared ahead of the one being used. Default 2. */
  prefetch?: number;
  /** Default ImageNet's mean and std. */
  normalization?: Normalization;
  /** A file that cannot be read or decoded is left out of its batch (`'skip'`, default) or fails it. */
  onError?: 'skip' | 'fail';
  /** Told of each skipped file. Default: one line on stderr. */
  onSkip?: (skipped: SkippedFile) => void;
  decode?: DecodeOptions;
}

/**
 * Iterates over a dataset in batches of normalized float32 NHWC images: `for await (const batch of
 * loader.epoch(e))`. Images are decoded `concurrency` at a time and at most `prefetch` batches
 * ahead of the caller, so memory stays bounded and a slow consumer slows decoding down.
 */
export class DataLoader {
  readonly sampler: DistributedSampler;
  /** Files skipped so far, over all epochs. */
  readonly skipped: SkippedFile[] = [];
  private readonly limit: ConcurrencyLimit;
  private readonly table: Float32Array;
  private readonly workers: number;
  private pool: DecodePool | undefined;
  private poolWarned = false;
  /** Batch buffers released by the caller, for later batches of the same size. */
  private readonly released: Float32Array[] = [];
  private delivered = 0;
  private startedAt: number | undefined;

  constructor(
    readonly dataset: ImageDataset,
    readonly options: DataLoaderOptions,
  ) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new RangeError(`Expected a batchSize of at least 1, found ${options.batchSize}.`);
    }
    this.sampler =
      options.sampler ?? new DistributedSampler(dataset.files.length, { seed: options.seed ?? 0 });
    if (this.sampler.length !== dataset.files.length) {
      throw new RangeError(
        `Expected a sampler over the dataset's ${dataset.files.length} files, found one over ${this.sampler.length}.`,
      );
    }
    this.workers = options.workers ?? availableParallelism();
    if (!Number.isInteger(this.workers) || this.workers < 0) {
      throw new RangeError(`Expected workers to be an integer ≥ 0, found ${options.workers}.`);
    }
    this.limit = new ConcurrencyLimit(
      options.concurrency ?? Math.max(availableParallelism(), 2 * this.workers),
    );
    this.table = normalizationTable(
      options.normalization ?? { mean: IMAGENET_MEAN, std: IMAGENET_STD },
    );
  }

  /** Batches per epoch on this rank: the same on every rank. */
  get numBatches(): number {
    const n = this.sampler.numSamples;
    const size = this.options.batchSize;
    return this.options.dropLast ? Math.floor(n / size) : Math.ceil(n / size);
  }

  /** Images delivered per second since the first batch was asked for. */
  get imagesPerSecond(): number {
    if (this.startedAt === undefined) return 0;
    return this.delivered / ((performance.now() - this.startedAt) / 1000);
  }

  /**
   * The batches of `epoch`, in order, from batch `from` on (default 0: a run resumed mid-epoch
   * skips the batches it trained on without decoding them). Leaving the loop early stops decoding.
   */
  async *epoch(epoch: number, from = 0): AsyncGenerator<Batch, void, undefined> {
    this.startedAt ??= performance.now();
    if (this.workers > 0 && this.options.decode?.kernel === undefined) {
      this.pool ??= new DecodePool(this.workers, this.table);
    }
    const order = this.sampler.indices(epoch);
    const size = this.options.batchSize;
    const count = this.numBatches;
    if (!Number.isInteger(from) || from < 0 || from > count) {
      throw new RangeError(
        `Expected a first batch in [0, ${count}] for epoch ${epoch}, found ${from}.`,
      );
    }
    const ahead = Math.max(1, this.options.prefetch ?? 2);
    const stop = { stopped: false };
    const pending: Promise<Batch>[] = [];
    let next = from;
    const start = () => {
      const b = next++;
      const batch = this.loadBatch(order.subarray(b * size, (b + 1) * size), epoch, b, stop);
      batch.catch(() => undefined); // Rejections surface when awaited, not as unhandled.
      pending.push(batch);
    };
    try {
      while (next < count && pending.length < ahead) start();
      for (let b = from; b < count; b++) {
        const batch = await pending.shift()!;
        if (next < count) start();
        this.delivered += batch.shape[0];
        yield batch;
      }
    } finally {
      stop.stopped = true;
    }
  }

  private async loadBatch(
    indices: Int32Array,
    epoch: number,
    index: number,
    stop: { stopped: boolean },
  ): Promise<Batch> {
    const seed = this.options.seed ?? 0;
    // Each image goes into its slot of the batch as soon as it is decoded; the batch buffer is
    // made when the first image gives the size, and closed up after if files were skipped.
    let out: Float32Array | undefined;
    let size: { width: number; height: number; first: number } | undefined;
    const kept = await Promise.all(
      Array.from(indices, (i, k) =>
        this.limit.run(async () => {
          if (stop.stopped) return false;
          const file = await this.loadImage(i, epoch, seed);
          if (!file) return false;
          const { view } = file;
          size ??= { width: view.width, height: view.height, first: i };
          if (view.width !== size.width || view.height !== size.height) {
            const path = (j: number) => join(this.dataset.root, this.dataset.files[j]!);
            throw new RangeError(
              `Expected every image of a batch to be ${size.width}×${size.height} (as ` +
                `${path(size.first)} is), found ${view.width}×${view.height} for ${path(i)}; ` +
                `end the transforms with a fixed-size crop.`,
            );
          }
          out ??= this.batchBuffer(indices.length * size.height * size.width * 3);
          return this.decodeInto(file, i, epoch, out, k * size.height * size.width * 3);
        }),
      ),
    );
    const [height, width] = size ? [size.height, size.width] : [0, 0];
    const pixels = height * width * 3;
    const labels = new Int32Array(indices.length);
    const keptIndices = new Int32Array(indices.length);
    let n = 0;
    kept.forEach((ok, k) => {
      if (!ok) return;
      if (n !== k) out!.copyWithin(n * pixels, k * pixels, (k + 1) * pixels);
      labels[n] = this.dataset.labels[indices[k]!]!;
      keptIndices[n++] = indices[k]!;
    });
    // A batch with files left out is a copy: its full-size buffer is free at once.
    const whole = !out || n === indices.length;
    if (out && !whole) this.recycle(out);
    let released = false;
    return {
      images: whole ? (out ?? new Float32Array(0)) : out!.slice(0, n * pixels),
      release: () => {
        if (released || !whole || !out) return;
        released = true;
        this.recycle(out);
      },
      labels: labels.slice(0, n),
      indices: keptIndices.slice(0, n),
      shape: [n, height, width, 3],
      epoch,
      index,
    };
  }

  /** Keeps a batch buffer for a later batch, as many as can be in use at once. */
  private recycle(buffer: Float32Array): void {
    if (this.released.length < (this.options.prefetch ?? 2) + 2) this.released.push(buffer);
  }

  /** A float32 buffer for a batch, shared with the decoding threads when there are some. */
  private batchBuffer(length: number): Float32Array {
    // Released buffers are of the kind this loader makes: the pool, if any, starts with the epoch.
    const reused = this.released.findIndex((b) => b.length === length);
    if (reused >= 0) return this.released.splice(reused, 1)[0]!;
    return this.pool
      ? new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT))
      : new Float32Array(length);
  }

  /** Reads file `i` and plans its transforms; undefined if it is left out under the policy. */
  private async loadImage(i: number, epoch: number, seed: number): Promise<LoadedFile | undefined> {
    const path = join(this.dataset.root, this.dataset.files[i]!);
    try {
      // Read here at once: the decoding threads, not libuv's, are where the time should go.
      const bytes = readFileSync(path);
      const random = Random.forSample(seed, epoch, i);
      const view = await planView(
        bytes,
        this.options.transforms,
        random,
        path,
        this.options.decode?.failOn,
      );
      return { path, bytes, view };
    } catch (error) {
      return this.leaveOut(error, path, i, epoch);
    }
  }

  /**
   * Decodes a file into `out` at `offset`: a baseline JPEG on a decoding thread, anything that
   * thread does not take (other formats and JPEGs, damaged data) with sharp. False if the file
   * is left out under the policy.
   */
  private async decodeInto(
    file: LoadedFile,
    i: number,
    epoch: number,
    out: Float32Array,
    offset: number,
  ): Promise<boolean> {
    const { path, bytes, view } = file;
    const resize = pillowResize(view);
    if (this.pool && resize && bytes[0] === 0xff && bytes[1] === 0xd8) {
      const reply = await this.pool.decode(bytes, resize, view.flip, out, offset);
      if (reply.status === 0) return true;
      if (reply.status < 0 && !this.poolWarned) {
        this.poolWarned = true;
        console.warn(
          `@thor-ts/data: decoding with sharp after a decoding thread failed on ${path}: ${reply.error}`,
        );
      }
    }
    try {
      const pending = await decodePlanned(bytes, view, path, this.options.decode);
      pending.writeNormalized(this.table, out, offset);
      return true;
    } catch (error) {
      return this.leaveOut(error, path, i, epoch) ?? false;
    }
  }

  /**
   * An unreadable or undecodable file under the policy: reported and left out (undefined), or
   * rethrown as an {@link ImageDecodeError}. Any other error (a transform's) is rethrown as is.
   */
  private leaveOut(error: unknown, path: string, i: number, epoch: number): undefined {
    const unreadable = typeof (error as NodeJS.ErrnoException).code === 'string';
    if (!(error instanceof ImageDecodeError) && !unreadable) throw error;
    const reason = error instanceof ImageDecodeError ? error.reason : (error as Error).message;
    if ((this.options.onError ?? 'skip') === 'fail') {
      throw error instanceof ImageDecodeError ? error : new ImageDecodeError(path, reason);
    }
    const skipped = { path, index: i, label: this.dataset.labels[i]!, reason, epoch };
    this.skipped.push(skipped);
    (this.options.onSkip ?? warnSkipped)(skipped);
    return undefined;
  }

  /** Stops the decoding threads (they also stop holding the process open whenever idle). */
  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = undefined;
  }
}

/** A file read, with the view its transforms planned. */
interface LoadedFile {
  path: string;
  bytes: Uint8Array;
  view: ImageView;
}

function warnSkipped(s: SkippedFile): void {
  console.warn(
    `@thor-ts/data: skipped ${s.path} (label ${s.label}, epoch ${s.epoch}): ${s.reason}`,
  );
}
