/**
 * Recursive halving (reduce-scatter) then recursive doubling (all-gather) for a power-of-two
 * number of ranks: 2·log₂n steps instead of the ring's 2(n − 1), for small buffers where latency
 * dominates. At halving step k rank r exchanges with r XOR (n >> (k + 1)), keeps one half of its
 * range (the lower one when that bit of r is 0) and adds the partner's copy of it. Each element is
 * reduced by one rank only, so every rank ends with identical bytes.
 */
import type { Algorithm, Port } from './algorithm.js';
import { addInto } from './ring_schedule.js';

export class HalvingDoubling implements Algorithm {
  private readonly levels: number;
  private k = 0;
  private lo = 0;
  private hi: number;
  private sent = -1;
  private readonly ranges: [number, number][] = [];
  private readonly early = new Map<number, [number, number, Float32Array]>();

  constructor(
    private readonly port: Port,
    private readonly buf: Float32Array,
    private readonly finish: (view: Float32Array) => void,
  ) {
    this.levels = Math.log2(port.n);
    if (!Number.isInteger(this.levels)) {
      throw new Error(`halving-doubling needs a power-of-two world size, got ${port.n}`);
    }
    this.hi = buf.length;
  }

  private partner(k: number): number {
    const bit = k < this.levels ? k : 2 * this.levels - 1 - k;
    return this.port.rank ^ (this.port.n >> (bit + 1));
  }

  /** At halving step k: [keep, give] ranges of the current range. */
  private split(k: number): [[number, number], [number, number]] {
    const mid = this.lo + Math.floor((this.hi - this.lo) / 2);
    const low: [number, number] = [this.lo, mid];
    const high: [number, number] = [mid, this.hi];
    return (this.port.rank & (this.port.n >> (k + 1))) === 0 ? [low, high] : [high, low];
  }

  start(): void {
    if (this.levels === 0) this.finish(this.buf);
    this.advance();
  }

  receive(from: number, step: number, offset: number, data: Float32Array): void {
    if (step >= 2 * this.levels || step < this.k || this.early.has(step)) {
      throw new Error(`unexpected halving-doubling step ${step} (at step ${this.k})`);
    }
    if (from !== this.partner(step)) {
      throw new Error(`step ${step} expects rank ${this.partner(step)}, got rank ${from}`);
    }
    this.early.set(step, [from, offset, data.slice()]); // `data` lies in a reused buffer
    this.advance();
  }

  private advance(): void {
    while (this.k < 2 * this.levels) {
      const k = this.k;
      const halving = k < this.levels;
      if (this.sent < k) {
        this.sent = k;
        const [s, e] = halving ? this.split(k)[1] : [this.lo, this.hi];
        this.port.send(this.partner(k), k, s, this.buf.subarray(s, e));
      }
      const frame = this.early.get(k);
      if (!frame) return;
      this.early.delete(k);
      const [, offset, data] = frame;
      const [s, e] = halving ? this.split(k)[0] : this.other(2 * this.levels - 1 - k);
      if (offset !== s || data.length !== e - s) {
        throw new Error(
          `step ${k} expects [${s}, ${e}), got ${data.length} elements at offset ${offset}`,
        );
      }
      const view = this.buf.subarray(s, e);
      if (halving) {
        addInto(view, data);
        this.ranges.push([this.lo, this.hi]);
        [this.lo, this.hi] = [s, e];
        if (k === this.levels - 1) this.finish(view);
      } else {
        view.set(data);
        [this.lo, this.hi] = this.ranges[2 * this.levels - 1 - k] as [number, number];
      }
      this.k++;
    }
  }

  /** The partner's part of the range this rank split at halving step j. */
  private other(j: number): [number, number] {
    const [lo, hi] = this.ranges[j] as [number, number];
    const mid = lo + Math.floor((hi - lo) / 2);
    return (this.port.rank & (this.port.n >> (j + 1))) === 0 ? [mid, hi] : [lo, mid];
  }

  done(): boolean {
    return this.k === 2 * this.levels;
  }

  waitingFor(): number {
    return this.partner(Math.min(this.k, 2 * this.levels - 1));
  }
}
