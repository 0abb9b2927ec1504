/**
 * Gradient buckets like PyTorch DDP's reducer: parameters are grouped in reverse registration
 * order (backward produces the last layers' gradients first) into buckets up to a byte cap, and
 * each bucket's all-reduce starts as soon as all its gradients are marked ready, in bucket order on
 * every rank, while backward goes on. `noSync` sums gradients of several micro-batches locally and
 * all-reduces them once (DDP's `no_sync`).
 */
import type { Ring } from './ring.js';
import { addInto } from './ring_schedule.js';

export interface ReducerOptions {
  /** Largest bucket in bytes (a bigger parameter gets a bucket of its own). Default 25 MiB, like DDP. */
  capBytes?: number;
  /** Cap of bucket 0, whose gradients come first. Default min(1 MiB, `capBytes`), like DDP. */
  firstCapBytes?: number;
  /** Default 'mean' (the average over ranks, as DDP gives). */
  op?: 'sum' | 'mean';
  /** Default 'float32'. */
  wire?: 'float32' | 'float16';
  /** Called as each bucket's all-reduce completes, with the reduced bucket (e.g. to start work on it). */
  onReduced?: (bucket: Bucket, data: Float32Array) => void;
}

export interface Bucket {
  /** Carried in the fingerprint of the bucket's all-reduce. */
  index: number;
  /** Parameter indices, in the order they lie in the bucket (reverse registration order). */
  params: readonly number[];
  /** Elements in the bucket. */
  length: number;
}

/** Splits parameters (element counts) into buckets, last parameter first. */
export function assignBuckets(
  sizes: readonly number[],
  capBytes: number,
  firstCapBytes: number,
): Bucket[] {
  const buckets: Bucket[] = [];
  let params: number[] = [];
  let length = 0;
  for (let i = sizes.length - 1; i >= 0; i--) {
    const size = sizes[i] as number;
    const cap = buckets.length === 0 ? firstCapBytes : capBytes;
    if (params.length > 0 && (length + size) * 4 > cap) {
      buckets.push({ index: buckets.length, params, length });
      params = [];
      length = 0;
    }
    params.push(i);
    length += size;
  }
  if (params.length > 0) buckets.push({ index: buckets.length, params, length });
  return buckets;
}

export class GradientReducer {
  readonly buckets: readonly Bucket[];
  private readonly data: Float32Array[];
  /** Each parameter's bucket and its view into the bucket's buffer. */
  private readonly slots: { bucket: number; view: Float32Array }[];
  /** Marked ready in this backward pass. */
  private readonly marked: Uint8Array;
  /** Holds a gradient (of this or an earlier micro-batch since the last flush). */
  private readonly held: Uint8Array;
  private readonly count: number[];
  private pending: Promise<Float32Array>[] = [];
  private syncing = true;
  private readonly op: 'sum' | 'mean';
  private readonly wire: 'float32' | 'float16';
  private readonly onReduced: ((bucket: Bucket, data: Float32Array) => void) | undefined;

  constructor(
    private readonly ring: Ring,
    private readonly sizes: readonly number[],
    options: ReducerOptions = {},
  ) {
    sizes.forEach((s, i) => {
      if (!Number.isInteger(s) || s < 0) {
        throw new Error(
          `reducer: expected parameter sizes ≥ 0 (elements), got ${s} for parameter ${i}`,
        );
      }
    });
    const capBytes = options.capBytes ?? 25 << 20;
    const firstCapBytes = options.firstCapBytes ?? Math.min(1 << 20, capBytes);
    if (!(capBytes > 0) || !(firstCapBytes > 0)) {
      throw new Error(
        `reducer: expected positive bucket caps, got capBytes ${capBytes}, firstCapBytes ${firstCapBytes}`,
      );
    }
    this.op = options.op ?? 'mean';
    this.wire = options.wire ?? 'float32';
    this.onReduced = options.onReduced;
    this.buckets = assignBuckets(sizes, capBytes, firstCapBytes);
    this.data = this.buckets.map((b) => new Float32Array(b.length));
    this.slots = new Array<{ bucket: number; view: Float32Array }>(sizes.length);
    for (const b of this.buckets) {
      let offset = 0;
      for (const i of b.params) {
        const size = sizes[i] as number;
        this.slots[i] = {
          bucket: b.index,
          view: (this.data[b.index] as Float32Array).subarray(offset, offset + size),
        };
        offset += size;
      }
    }
    this.marked = new Uint8Array(sizes.length);
    this.held = new Uint8Array(sizes.length);
    this.count = this.buckets.map(() => 0);
  }

  /**
   * Parameter `i`'s gradient is ready: it is copied into its bucket (or added, after `noSync`
   * micro-batches), and every bucket whose gradients are now all ready starts its all-reduce,
   * in bucket order.
   */
  ready(i: number, grad: Float32Array): void {
    const slot = this.slots[i];
    if (!Number.isInteger(i) || slot === undefined) {
      throw new Error(
        `reducer.ready: expected a parameter index below ${this.sizes.length}, got ${i}`,
      );
    }
    if (grad.length !== slot.view.length) {
      throw new Error(
        `reducer.ready: parameter ${i} has ${slot.view.length} elements, its gradient has ${grad.length}`,
      );
    }
    if (this.marked[i] === 1) {
      throw new Error(
        `reducer.ready: parameter ${i} (bucket ${slot.bucket}) was already marked ready in this backward pass; ` +
          'mark each parameter once per flush() or noSync() pass',
      );
    }
    if (this.held[i] === 1) addInto(slot.view, grad);
    else slot.view.set(grad);
    this.held[i] = 1;
    this.marked[i] = 1;
    this.count[slot.bucket] = (this.count[slot.bucket] as number) + 1;
    if (this.syncing) this.launch();
  }

  /**
   * Runs `fn` (a micro-batch's backward pass) with synchronization off: its `ready` gradients are
   * summed locally, and the next synchronized pass adds its own and all-reduces the total once.
   */
  async noSync<T>(fn: () => T | Promise<T>): Promise<T> {
    const outer = this.syncing;
    this.syncing = false;
    try {
      return await fn();
    } finally {
      this.syncing = outer;
      if (outer) {
        this.marked.fill(0);
        this.count.fill(0);
      }
    }
  }

  /**
   * Waits for every bucket's all-reduce and resolves with each parameter's reduced gradient, in
   * registration order: views into the buckets, valid until the next `ready`.
   */
  async flush(): Promise<Float32Array[]> {
    if (!this.syncing) throw new Error('reducer.flush: called inside noSync(); call it after');
    const missing: number[] = [];
    this.marked.forEach((m, i) => {
      if (m === 0) missing.push(i);
    });
    if (missing.length > 0) {
      const shown = missing.slice(0, 10).join(', ') + (missing.length > 10 ? ', …' : '');
      throw new Error(
        `reducer.flush: expected every parameter marked ready, ${missing.length} of ${this.sizes.length} were not: ${shown}`,
      );
    }
    const pending = this.pending;
    this.pending = [];
    this.marked.fill(0);
    this.held.fill(0);
    this.count.fill(0);
    await Promise.all(pending);
    return this.slots.map((s) => s.view);
  }

  private launch(): void {
    for (let b = this.pending.length; b < this.buckets.length; b++) {
      const bucket = this.buckets[b] as Bucket;
      if (this.count[b] !== bucket.params.length) return;
      const buf = this.data[b] as Float32Array;
      const reduced = this.ring.allReduce(buf, { op: this.op, wire: this.wire, bucket: b });
      reduced.then(
        (data) => this.onReduced?.(bucket, data),
        () => undefined,
      ); // errors: flush()
      this.pending.push(reduced);
    }
  }
}
