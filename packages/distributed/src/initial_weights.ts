/**
 * The job's authoritative initial weights, held by the coordinator: one rank publishes them once,
 * and every rank, or a worker restarted alone long after the others moved on, fetches them.
 *
 *   worker → coordinator  publish {id, length}, then `weights` pieces (seq = id, offset)
 *   coordinator → worker  published {id, length}   (or {id, error})
 *   worker → coordinator  fetch {id}
 *   coordinator → worker  `weights` pieces (seq = id, offset), then published {id, length}
 *
 * A fetch before the publish waits for it. Pieces are 64 KiB, below every link's frame limit.
 */
import { type Credentials } from './auth.js';
import {
  decodeControl,
  encodeControl,
  encodeHeader,
  FrameKind,
  type FrameHeader,
  jobTag,
  WireDtype,
} from './frame.js';
import { dial, type Link, type Log } from './link.js';

const PIECE_ELEMS = 16_384;

function pieceHeader(tag: number, id: number, length: number, offset: number): Buffer {
  const h = {
    kind: FrameKind.weights,
    op: 0,
    dtype: WireDtype.float32,
    seq: id,
    bucket: 0,
    step: 0,
  };
  return encodeHeader(tag, { ...h, length, offset });
}

/** Sends `w` as `weights` pieces tagged with request `id`. */
function sendPieces(link: Link, tag: number, id: number, w: Float32Array): void {
  for (let o = 0; o < w.length; o += PIECE_ELEMS) {
    const piece = w.subarray(o, Math.min(o + PIECE_ELEMS, w.length));
    link.send(
      pieceHeader(tag, id, w.length, o),
      new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength),
    );
  }
}

/** Copies a `weights` piece into `into` (allocated on the first piece); throws when it does not fit. */
function takePiece(
  h: FrameHeader,
  data: Buffer,
  into: Float32Array | undefined,
  where: string,
): Float32Array {
  const out = into ?? new Float32Array(h.length);
  if (h.length !== out.length || data.length % 4 !== 0 || h.offset + data.length / 4 > out.length) {
    throw new Error(
      `${where}: expected a piece of ${out.length} weights, got ${data.length} bytes at offset ${h.offset} of ${h.length}`,
    );
  }
  new Uint8Array(out.buffer, h.offset * 4, data.length).set(data);
  return out;
}

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

/** The coordinator's side: keeps the published weights and answers fetches, early ones once they exist. */
export class InitialStore {
  private weights: Float32Array | undefined;
  private by = -1;
  private readonly uploads = new Map<
    Link,
    { id: number; rank: number; got: Float32Array; arrived: number }
  >();
  private readonly waiting: [Link, number][] = [];

  constructor(
    private readonly tag: number,
    private readonly log: Log,
  ) {}

  /** Handles a publish, weights or fetch frame from `link` (rank `rank`); false for other kinds. */
  handle(link: Link, rank: number, h: FrameHeader, data: Buffer): boolean {
    if (h.kind === FrameKind.weights) {
      this.piece(link, rank, h, data);
      return true;
    }
    if (h.kind !== FrameKind.publish && h.kind !== FrameKind.fetch) return false;
    const body = decodeControl(data);
    const id = body.id;
    if (typeof id !== 'number') {
      this.log(
        `rank ${rank}: expected {id} in a ${h.kind === FrameKind.fetch ? 'fetch' : 'publish'} frame; ignored`,
      );
      return true;
    }
    if (h.kind === FrameKind.fetch) {
      if (this.weights) this.answer(link, id, this.weights);
      else this.waiting.push([link, id]);
      return true;
    }
    const length = body.length;
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) {
      this.reply(
        link,
        id,
        `expected a publish of a whole number of elements, got length ${String(length)}`,
      );
    } else if (this.weights) {
      this.reply(
        link,
        id,
        `rank ${rank} publishes initial weights, but rank ${this.by} already published them (${this.weights.length} elements); they are published once per job`,
      );
    } else {
      this.uploads.set(link, { id, rank, got: new Float32Array(length), arrived: 0 });
      this.complete(link);
    }
    return true;
  }

  private piece(link: Link, rank: number, h: FrameHeader, data: Buffer): void {
    const up = this.uploads.get(link);
    if (!up || up.id !== h.seq) {
      this.log(`rank ${rank} sent initial weights without a publish frame; ignored`);
      return;
    }
    try {
      takePiece(h, data, up.got, `initial weights from rank ${rank}`);
      up.arrived += data.length / 4;
    } catch (e) {
      this.uploads.delete(link);
      this.reply(link, up.id, (e as Error).message);
      return;
    }
    this.complete(link);
  }

  private complete(link: Link): void {
    const up = this.uploads.get(link);
    if (!up || up.arrived < up.got.length) return;
    this.uploads.delete(link);
    if (this.weights) {
      this.reply(
        link,
        up.id,
        `rank ${up.rank} publishes initial weights, but rank ${this.by} already published them`,
      );
      return;
    }
    this.weights = up.got;
    this.by = up.rank;
    this.log(`rank ${up.rank} published the initial weights (${up.got.length} elements)`);
    link.send(encodeControl(this.tag, FrameKind.published, { id: up.id, length: up.got.length }));
    for (const [l, id] of this.waiting.splice(0)) this.answer(l, id, up.got);
  }

  private answer(link: Link, id: number, w: Float32Array): void {
    sendPieces(link, this.tag, id, w);
    link.send(encodeControl(this.tag, FrameKind.published, { id, length: w.length }));
  }

  private reply(link: Link, id: number, error: string): void {
    this.log(error);
    link.send(encodeControl(this.tag, FrameKind.published, { id, error }));
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
