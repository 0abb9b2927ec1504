/**
 * Buffers for the payloads of frames that arrive before their collective starts on this rank
 * (a peer already in the next all-reduce). The link receives such a payload straight into one of
 * these, kept until the collective takes it, then reused: no copy and no fresh allocation (fresh
 * pages cost more than the copy) per early frame.
 */

/** Buffers kept for reuse at most; more are left to the garbage collector. */
const MAX_KEPT = 32;

export class FramePool {
  private readonly free: Buffer[] = [];

  /** A 4-byte-aligned buffer of `bytes` bytes. */
  take(bytes: number): Buffer {
    const i = this.free.findIndex((b) => b.length >= bytes);
    const b = i >= 0 ? (this.free.splice(i, 1)[0] as Buffer) : Buffer.allocUnsafeSlow(bytes);
    return b.subarray(0, bytes);
  }

  /** A pooled copy of `data`. */
  copy(data: Buffer): Buffer {
    const b = this.take(data.length);
    data.copy(b);
    return b;
  }

  /** Takes back a buffer from `take` or `copy` once nothing uses it. */
  give(b: Buffer): void {
    if (this.free.length < MAX_KEPT) this.free.push(Buffer.from(b.buffer, 0, b.buffer.byteLength));
  }
}
