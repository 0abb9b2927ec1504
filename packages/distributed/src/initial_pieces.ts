/**
 * The job's authoritative initial weights, held by the coordinator: one rank publishes them once,
 * and every rank, or a worker restarted alone long after the others moved on, fetches them. The
 * exchange, and the pieces the weights travel in:
 *
 *   worker → coordinator  publish {id, length}, then `weights` pieces (seq = id, offset)
 *   coordinator → worker  published {id, length}   (or {id, error})
 *   worker → coordinator  fetch {id}
 *   coordinator → worker  `weights` pieces (seq = id, offset), then published {id, length}
 *
 * A fetch before the publish waits for it. Pieces are 64 KiB, below every link's frame limit.
 */
import { encodeHeader, FrameKind, type FrameHeader, WireDtype } from './frame.js';
import type { Link } from './link.js';

export const PIECE_ELEMS = 16_384;

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
export function sendPieces(link: Link, tag: number, id: number, w: Float32Array): void {
  for (let o = 0; o < w.length; o += PIECE_ELEMS) {
    const piece = w.subarray(o, Math.min(o + PIECE_ELEMS, w.length));
    link.send(
      pieceHeader(tag, id, w.length, o),
      new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength),
    );
  }
}

/** Copies a `weights` piece into `into` (allocated on the first piece); throws when it does not fit. */
export function takePiece(
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
