/**
 * Broadcast as a pipelined chain from the root around the ring: the rank at distance p from the
 * root receives each segment as step p − 1 and passes it on at once as step p.
 */
import { type Algorithm, mod, type Port } from './algorithm.js';

export class BroadcastSchedule implements Algorithm {
  private readonly position: number;
  private readonly expected: number;
  private received = 0;
  private readonly got: Uint8Array;

  constructor(
    private readonly port: Port,
    private readonly buf: Float32Array,
    private readonly root: number,
    private readonly segElems: number,
  ) {
    this.position = mod(port.rank - root, port.n);
    const segs = Math.ceil(buf.length / segElems);
    this.expected = this.position === 0 ? 0 : segs;
    this.got = new Uint8Array(segs);
  }

  start(): void {
    if (this.position !== 0 || this.port.n === 1) return;
    this.forward(0, this.buf.length);
  }

  private forward(from: number, to: number): void {
    if (this.position === this.port.n - 1) return;
    const next = mod(this.port.rank + 1, this.port.n);
    for (let o = from; o < to; o += this.segElems) {
      this.port.send(next, this.position, o, this.buf.subarray(o, Math.min(o + this.segElems, to)));
    }
  }

  receive(from: number, step: number, offset: number, data: Float32Array): void {
    const left = mod(this.port.rank - 1, this.port.n);
    if (this.position === 0 || from !== left || step !== this.position - 1) {
      throw new Error(
        `broadcast from rank ${this.root}: expected step ${this.position - 1} from rank ${left}, ` +
          `got step ${step} from rank ${from}`,
      );
    }
    const k = offset / this.segElems;
    const len = Math.min(this.segElems, this.buf.length - offset);
    if (!Number.isInteger(k) || k >= this.got.length || data.length !== len || this.got[k] === 1) {
      throw new Error(
        `broadcast of ${this.buf.length} elements in segments of ${this.segElems}: ` +
          `unexpected ${data.length} elements at offset ${offset}`,
      );
    }
    this.got[k] = 1;
    this.buf.set(data, offset);
    this.forward(offset, offset + len);
    this.received++;
  }

  done(): boolean {
    return this.received === this.expected;
  }

  waitingFor(): number {
    return mod(this.port.rank - 1, this.port.n);
  }
}
