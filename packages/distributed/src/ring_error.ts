/** Why a ring stopped: a dead or stalled peer, a fingerprint mismatch, a bad frame or an abort. */
export class RingError extends Error {
  override readonly name = 'RingError';

  constructor(
    message: string,
    /** The rank that raised it. */
    readonly rank: number,
  ) {
    super(message);
  }
}
