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

  placement(from: number, step: number, offset: number, count: number): Float32Array | undefined {
    return this.check(from, step, offset, count) === undefined
      ? this.buf.subarray(offset, offset + count)
      : undefined;
  }

  receive(from: number, step: number, offset: number, data: Float32Array): void {
    const wrong = this.check(from, step, offset, data.length);
    if (wrong !== undefined) throw new Error(wrong);
    this.got[offset / this.segElems] = 1;
    const view = this.buf.subarray(offset, offset + data.length);
    // Not when the link received it in place.
    if (data.buffer !== view.buffer || data.byteOffset !== view.byteOffset) view.set(data);
    this.forward(offset, offset + data.length);
    this.received++;
  }

  /** What is wrong with a frame, or undefined when it is the next segment of the chain. */
  private check(from: number, step: number, offset: number, count: number): string | undefined {
    const left = mod(this.port.rank - 1, this.port.n);
    if (this.position === 0 || from !== left || step !== this.position - 1) {
      return (
        `broadcast from rank ${this.root}: expected step ${this.position - 1} from rank ${left}, ` +
        `got step ${step} from rank ${from}`
      );
    }
    const k = offset / this.segElems;
    const len = Math.min(this.segElems, this.buf.length - offset);
    if (
      !Number.isInteger(k) ||
      k < 0 ||
      k >= this.got.length ||
      count !== len ||
      this.got[k] === 1
    ) {
      return (
        `broadcast of ${this.buf.length} elements in segments of ${this.segElems}: ` +
        `unexpected ${count} elements at offset ${offset}`
      );
    }
    return undefined;
  }

  done(): boolean {
    return this.received === this.expected;
  }

  waitingFor(): number {
    return mod(this.port.rank - 1, this.port.n);
  }
}
