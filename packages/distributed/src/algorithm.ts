/** What a collective algorithm sees of the ring: its rank, the world size and a way to send. */
export interface Port {
  readonly rank: number;
  readonly n: number;
  /** Sends `data` (elements from `offset` of the collective's buffer) to rank `to` as `step`. */
  send(to: number, step: number, offset: number, data: Float32Array): void;
}

/** An event-driven collective: started once, then fed every data frame meant for it. */
export interface Algorithm {
  start(): void;
  /**
   * Throws a message saying what was expected when the frame breaks the algorithm's schedule.
   * `data` is valid during the call only (it lies in a buffer the link reuses): copy what is kept.
   */
  receive(from: number, step: number, offset: number, data: Float32Array): void;
  /**
   * Where the `count` elements of a frame that `receive` would copy as they are may be received
   * directly (a view of the collective's buffer), or undefined when it would reduce them or the
   * frame breaks the schedule. `receive` then gets that very view.
   */
  placement?(from: number, step: number, offset: number, count: number): Float32Array | undefined;
  done(): boolean;
  /** The rank whose frame the algorithm waits for now (named when a deadline passes). */
  waitingFor(): number;
}

export const mod = (a: number, n: number): number => ((a % n) + n) % n;

/** Element range [start, end) of chunk `c` when `length` elements are split into `n` chunks. */
export function chunkBounds(length: number, n: number, c: number): [number, number] {
  return [Math.floor((c * length) / n), Math.floor(((c + 1) * length) / n)];
}
