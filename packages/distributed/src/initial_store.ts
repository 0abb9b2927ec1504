/**
 * The coordinator's side of the job's initial weights (see initial_pieces.ts for the exchange):
 * it keeps what one rank published and answers every fetch, early ones once the weights exist.
 */
import { decodeControl, encodeControl, FrameKind, type FrameHeader } from './frame.js';
import { sendPieces, takePiece } from './initial_pieces.js';
import type { Link, Log } from './link.js';

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
