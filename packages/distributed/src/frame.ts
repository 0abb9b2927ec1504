/**
 * The wire format: every WebSocket message between a worker and its peers or the coordinator is
 * one binary frame, a 32-byte little-endian header followed by a payload.
 *
 * | bytes | field  | meaning                                                          |
 * | ----- | ------ | ---------------------------------------------------------------- |
 * | 0–3   | magic  | `THR1`                                                           |
 * | 4–7   | job    | first 4 bytes of SHA-256(job id): a frame for another job is refused |
 * | 8     | kind   | {@link FrameKind}                                                |
 * | 9     | op     | {@link CollectiveOp} of a data frame                            |
 * | 10    | dtype  | {@link WireDtype} of the payload                                 |
 * | 12–15 | seq    | collective sequence number                                       |
 * | 16–19 | bucket | gradient bucket id                                               |
 * | 20–23 | length | elements in the whole collective                                 |
 * | 24–27 | step   | algorithm step                                                   |
 * | 28–31 | offset | element offset of the payload in the collective's buffer         |
 *
 * Control frames (handshake, rendezvous, barrier, abort, initial weights) carry UTF-8 JSON as
 * payload; `data` and `weights` frames carry float32 (or float16) elements.
 */
import { createHash } from 'node:crypto';

export const HEADER_BYTES = 32;
const MAGIC = 0x31524854; // 'THR1' read little-endian

export const FrameKind = {
  challenge: 1,
  hello: 2,
  welcome: 3,
  data: 4,
  join: 5,
  peers: 6,
  barrier: 7,
  release: 8,
  abort: 9,
  stalled: 10,
  /** Control {id, length}: the initial weights follow as `weights` frames. */
  publish: 11,
  /** Data: a piece of the initial weights (`seq` the request id, `length` the total, `offset`). */
  weights: 12,
  /** Control {id, length} or {id, error}: a publish stored, or a fetch's last piece sent. */
  published: 13,
  /** Control {id}: asks the coordinator for the initial weights. */
  fetch: 14,
  /** Control {}: a peer's first frame on the data link, after the handshake (see link.ts). */
  ready: 15,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];
const KIND_NAMES = new Map<number, string>(Object.entries(FrameKind).map(([k, v]) => [v, k]));

export const CollectiveOp = { allReduce: 1, allGather: 2, broadcast: 3 } as const;
export type CollectiveOp = (typeof CollectiveOp)[keyof typeof CollectiveOp];

/** 0: float32, 1: float16 (IEEE binary16). */
export const WireDtype = { float32: 0, float16: 1 } as const;
export type WireDtype = (typeof WireDtype)[keyof typeof WireDtype];

export interface FrameHeader {
  kind: FrameKind;
  op: number;
  dtype: number;
  seq: number;
  bucket: number;
  length: number;
  step: number;
  offset: number;
}

/** The 4-byte tag that every frame of the job `jobId` carries. */
export function jobTag(jobId: string): number {
  return createHash('sha256').update(jobId).digest().readUInt32LE(0);
}

export function encodeHeader(tag: number, h: FrameHeader): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(tag, 4);
  b.writeUInt8(h.kind, 8);
  b.writeUInt8(h.op, 9);
  b.writeUInt8(h.dtype, 10);
  b.writeUInt8(0, 11);
  b.writeUInt32LE(h.seq, 12);
  b.writeUInt32LE(h.bucket, 16);
  b.writeUInt32LE(h.length, 20);
  b.writeUInt32LE(h.step, 24);
  b.writeUInt32LE(h.offset, 28);
  return b;
}

/** A control frame: header (only `kind` set) and a JSON payload. */
export function encodeControl(tag: number, kind: FrameKind, body: unknown): Buffer {
  const head = encodeHeader(tag, {
    kind,
    op: 0,
    dtype: 0,
    seq: 0,
    bucket: 0,
    length: 0,
    step: 0,
    offset: 0,
  });
  return Buffer.concat([head, Buffer.from(JSON.stringify(body), 'utf8')]);
}

/**
 * Reads and checks a frame's header. Throws a message saying what was expected and found when the
 * frame is too short, has the wrong magic, belongs to another job or has an unknown kind.
 */
export function decodeHeader(data: Buffer, tag: number): FrameHeader {
  if (data.length < HEADER_BYTES) {
    throw new Error(`malformed frame: expected at least ${HEADER_BYTES} bytes, got ${data.length}`);
  }
  const magic = data.readUInt32LE(0);
  if (magic !== MAGIC) {
    throw new Error(
      `malformed frame: expected magic 0x${MAGIC.toString(16)}, got 0x${magic.toString(16)}`,
    );
  }
  const got = data.readUInt32LE(4);
  if (got !== tag) {
    throw new Error(
      `frame for another job: expected job tag 0x${tag.toString(16)}, got 0x${got.toString(16)}`,
    );
  }
  const kind = data.readUInt8(8);
  if (!KIND_NAMES.has(kind)) throw new Error(`malformed frame: unknown kind ${kind}`);
  return {
    kind: kind as FrameKind,
    op: data.readUInt8(9),
    dtype: data.readUInt8(10),
    seq: data.readUInt32LE(12),
    bucket: data.readUInt32LE(16),
    length: data.readUInt32LE(20),
    step: data.readUInt32LE(24),
    offset: data.readUInt32LE(28),
  };
}

/** Parses a control frame's JSON payload into an object, or throws saying what was found. */
export function decodeControl(payload: Buffer): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new Error('malformed frame: control payload is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new Error('malformed frame: control payload is not a JSON object');
  }
  return body as Record<string, unknown>;
}

export function kindName(kind: number): string {
  return KIND_NAMES.get(kind) ?? `kind ${kind}`;
}
