/**
 * A worker's side of the job's initial weights: publishing them, and fetching them, over its link
 * to the coordinator or (a restarted worker) over a reader's link (the exchange: initial_pieces.ts).
 */
import { type Credentials } from './auth.js';
import { decodeControl, encodeControl, FrameKind, type FrameHeader, jobTag } from './frame.js';
import { sendPieces, takePiece } from './initial_pieces.js';
import { dial, type Link, type Log } from './link.js';

interface Request {
  resolve: (w: Float32Array) => void;
  reject: (e: Error) => void;
  /** A publish: the weights sent, stored once the coordinator confirms their length. */
  sent?: Float32Array;
  /** A fetch: the weights so far, and how many elements arrived. */
  got?: Float32Array;
  arrived?: number;
}

/** A worker's side: publish and fetch over its link to the coordinator. */
export class InitialWeights {
  private nextId = 1;
  private readonly requests = new Map<number, Request>();

  constructor(
    private readonly link: Link,
    private readonly tag: number,
    private readonly failed: () => Error | undefined,
  ) {}

  publish(weights: Float32Array, rank: number): Promise<void> {
    return this.request(weights, (id) => {
      this.link.send(
        encodeControl(this.tag, FrameKind.publish, { id, length: weights.length, rank }),
      );
      sendPieces(this.link, this.tag, id, weights);
    }).then(() => undefined);
  }

  fetch(): Promise<Float32Array> {
    return this.request(undefined, (id) =>
      this.link.send(encodeControl(this.tag, FrameKind.fetch, { id })),
    );
  }

  /** Takes the coordinator's `weights` and `published` frames; false for any other frame. */
  handles(h: FrameHeader, data: Buffer): boolean {
    if (h.kind === FrameKind.weights) {
      const req = this.requests.get(h.seq);
      if (req) {
        try {
          req.got = takePiece(h, data, req.got, 'initial weights from the coordinator');
          req.arrived = (req.arrived ?? 0) + data.length / 4;
        } catch (e) {
          this.settle(h.seq, e as Error);
        }
      }
      return true;
    }
    if (h.kind !== FrameKind.published) return false;
    const body = decodeControl(data);
    if (typeof body.id !== 'number') return true;
    const req = this.requests.get(body.id);
    if (!req) return true;
    if (typeof body.error === 'string') {
      this.settle(body.id, new Error(body.error));
      return true;
    }
    const have = req.sent ?? req.got ?? new Float32Array(0);
    const arrived = req.sent ? req.sent.length : (req.arrived ?? 0);
    if (body.length === have.length && arrived === have.length) this.settle(body.id, have);
    else {
      const what = req.sent ? `${req.sent.length} were sent` : `${arrived} arrived`;
      const msg = `initial weights: the coordinator announced ${String(body.length)} elements, ${what}`;
      this.settle(body.id, new Error(msg));
    }
    return true;
  }

  /** Rejects every open request with the ring's failure. */
  fail(e: Error): void {
    for (const id of [...this.requests.keys()]) this.settle(id, e);
  }

  private request(
    sent: Float32Array | undefined,
    send: (id: number) => void,
  ): Promise<Float32Array> {
    const failure = this.failed();
    if (failure) return Promise.reject(failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.requests.set(id, { resolve, reject, ...(sent ? { sent } : {}) });
      send(id);
    });
  }

  private settle(id: number, result: Float32Array | Error): void {
    const req = this.requests.get(id);
    if (!req) return;
    this.requests.delete(id);
    if (result instanceof Error) req.reject(result);
    else req.resolve(result);
  }
}

export interface FetchInitialOptions {
  /** The coordinator's `host:port`. */
  coordinator: string;
  token: string;
  /** Default 'thor-ts'. */
  jobId?: string;
  /** Who asks, for the coordinator's log. Default 0. */
  rank?: number;
  /** Gives up after this long without the weights. Default 60 000 ms. */
  timeoutMs?: number;
  log?: Log;
}

/**
 * Fetches the job's initial weights from its coordinator without joining the ring: for a worker
 * restarted alone (e.g. a pod its Job restarted) while the others train on.
 */
export async function fetchInitialWeights(o: FetchInitialOptions): Promise<Float32Array> {
  const { jobId = 'thor-ts', rank = 0, timeoutMs = 60_000 } = o;
  const log = o.log ?? ((l: string) => console.error(`[rank ${rank}] ${l}`));
  const creds: Credentials = { token: o.token, jobId, tag: jobTag(jobId) };
  const link = await dial(`ws://${o.coordinator}`, creds, rank, 'reader', 'the coordinator', {
    maxFrameBytes: 64 << 10,
    timeoutMs,
    log,
  });
  const weights = new InitialWeights(link, creds.tag, () => undefined);
  try {
    return await new Promise<Float32Array>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `rank ${rank}: no initial weights from the coordinator at ${o.coordinator} within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      link.listen({
        frame: (h, data) => {
          try {
            weights.handles(h, data);
          } catch (e) {
            reject(e as Error);
          }
        },
        lost: (why) =>
          reject(
            new Error(
              `rank ${rank}: lost the coordinator at ${o.coordinator} while fetching the initial weights: ${why}`,
            ),
          ),
      });
      weights
        .fetch()
        .then(resolve, reject)
        .finally(() => clearTimeout(timer));
    });
  } finally {
    link.close();
  }
}
