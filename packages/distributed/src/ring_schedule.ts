/**
 * The ring: reduce-scatter then all-gather, pipelined in segments. At step t rank r sends chunk
 * (r − t) mod n to r + 1 and receives chunk (r − 1 − t) mod n from r − 1; the first `reduceSteps`
 * steps add (received + own, so chunk c is summed in the fixed order c, c+1, …), the rest copy.
 * Each segment moves on as soon as it arrives, so many are in flight around the ring at once.
 * Every element is reduced by exactly one rank and copied to the others: all ranks end with
 * identical bytes.
 */
import { type Algorithm, mod, type Port } from './algorithm.js';
import type { SimdSum } from './simd_sum.js';

export interface RingPlan {
  /** Element range [start, end) of chunk c in `buf`. */
  bounds(c: number): [number, number];
  /** n − 1 for all-reduce, 0 for all-gather. */
  reduceSteps: number;
  /** Elements per segment. */
  segElems: number;
  /** Applied to each segment once it is fully reduced, before it is passed on (e.g. the mean). */
  finish(view: Float32Array): void;
  /** Adds the reduce steps' segments in wasm SIMD; without it, in JavaScript ({@link addInto}). */
  sum?: SimdSum | undefined;
}

/**
 * view[i] = data[i] + view[i]: received first, so the order of a chunk's sum is fixed. Unrolled
 * by four, which V8 runs about twice as fast as the plain loop (no SIMD: `view` is the caller's
 * buffer, outside any wasm memory).
 */
export function addInto(view: Float32Array, data: Float32Array): void {
  const len = Math.min(view.length, data.length);
  const end = len - (len & 3);
  let i = 0;
  for (; i < end; i += 4) {
    view[i] = (data[i] as number) + (view[i] as number);
    view[i + 1] = (data[i + 1] as number) + (view[i + 1] as number);
    view[i + 2] = (data[i + 2] as number) + (view[i + 2] as number);
    view[i + 3] = (data[i + 3] as number) + (view[i + 3] as number);
  }
  for (; i < len; i++) view[i] = (data[i] as number) + (view[i] as number);
}

export class RingSchedule implements Algorithm {
  private readonly total: number;
  private readonly maxSegs: number;
  private readonly got: Uint8Array;
  private expected = 0;
  private received = 0;

  constructor(
    private readonly port: Port,
    private readonly buf: Float32Array,
    private readonly plan: RingPlan,
  ) {
    const { n } = port;
    this.total = n === 1 ? 0 : plan.reduceSteps + n - 1;
    let maxSegs = 0;
    for (let c = 0; c < n; c++) maxSegs = Math.max(maxSegs, this.segments(c));
    this.maxSegs = maxSegs;
    this.got = new Uint8Array(this.total * maxSegs);
    for (let t = 0; t < this.total; t++) this.expected += this.segments(mod(port.rank - 1 - t, n));
  }

  private segments(c: number): number {
    const [s, e] = this.plan.bounds(c);
    return Math.ceil((e - s) / this.plan.segElems);
  }

  start(): void {
    const { rank, n } = this.port;
    if (this.total === 0) {
      if (this.plan.reduceSteps === 0 && n === 1) return;
      const [s, e] = this.plan.bounds(rank);
      this.plan.finish(this.buf.subarray(s, e));
      return;
    }
    const [s, e] = this.plan.bounds(rank);
    for (let o = s; o < e; o += this.plan.segElems) {
      this.port.send(
        mod(rank + 1, n),
        0,
        o,
        this.buf.subarray(o, Math.min(o + this.plan.segElems, e)),
      );
    }
  }

  /** The copy steps' segments go straight to their place; the add steps' to the wasm landing. */
  placement(from: number, t: number, offset: number, count: number): Float32Array | undefined {
    const at = this.locate(from, t, offset, count);
    if (typeof at === 'string' || this.got[at.bit] === 1) return undefined;
    return t < this.plan.reduceSteps ? this.plan.sum?.landingFor(count) : at.view;
  }

  receive(from: number, t: number, offset: number, data: Float32Array): void {
    const at = this.locate(from, t, offset, data.length);
    if (typeof at === 'string') throw new Error(at);
    const { bit, view } = at;
    if (this.got[bit] === 1) throw new Error(`step ${t} segment at offset ${offset} arrived twice`);
    this.got[bit] = 1;
    if (t < this.plan.reduceSteps) {
      if (this.plan.sum) this.plan.sum.addInto(view, data);
      else addInto(view, data);
      if (t === this.plan.reduceSteps - 1) this.plan.finish(view);
    } else if (data.buffer !== view.buffer || data.byteOffset !== view.byteOffset) {
      view.set(data); // not when the link received it in place
    }
    const { rank, n } = this.port;
    if (t + 1 < this.total) this.port.send(mod(rank + 1, n), t + 1, offset, view);
    this.received++;
  }

  /** The segment a frame carries, or what is wrong with it. */
  private locate(
    from: number,
    t: number,
    offset: number,
    count: number,
  ): { bit: number; view: Float32Array } | string {
    const { rank, n } = this.port;
    const left = mod(rank - 1, n);
    if (from !== left) return `expected ring frames from rank ${left}, got one from rank ${from}`;
    if (t >= this.total) return `expected a step below ${this.total}, got step ${t}`;
    const c = mod(rank - 1 - t, n);
    const [s, e] = this.plan.bounds(c);
    const k = (offset - s) / this.plan.segElems;
    const len = Math.min(this.plan.segElems, e - offset);
    if (!Number.isInteger(k) || k < 0 || offset >= e || count !== len) {
      return (
        `step ${t} carries chunk ${c} = [${s}, ${e}) in segments of ${this.plan.segElems}: ` +
        `got ${count} elements at offset ${offset}`
      );
    }
    return { bit: t * this.maxSegs + k, view: this.buf.subarray(offset, offset + len) };
  }

  done(): boolean {
    return this.received === this.expected;
  }

  waitingFor(): number {
    return mod(this.port.rank - 1, this.port.n);
  }
}
