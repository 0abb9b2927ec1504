/**
 * RFC 6455 frame headers, for the data links that write and parse WebSocket frames themselves.
 *
 *   byte 0: FIN (0x80), RSV1–3 (0x70), opcode (0x0f)
 *   byte 1: MASK (0x80), payload length (0x7f): ≤ 125 itself, 126: a 16-bit length follows,
 *           127: a 64-bit length follows
 *   then the 4-byte masking key when MASK is set, then the payload.
 */
export const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** The longest frame header: 2 bytes, a 64-bit length and a masking key. */
export const MAX_WS_HEADER_BYTES = 14;

/**
 * The header of one unfragmented frame of `length` payload bytes, with the shortest length field
 * (RFC 6455 5.2). `masked` adds an all-zero masking key: clients must mask (5.3), and a zero key
 * leaves the payload bytes as they are, so nothing is copied to mask them.
 */
export function encodeWsHeader(opcode: number, length: number, masked: boolean): Buffer {
  const lengthBytes = length <= 125 ? 0 : length <= 0xffff ? 2 : 8;
  const head = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0));
  head[0] = 0x80 | opcode;
  const mask = masked ? 0x80 : 0;
  if (lengthBytes === 0) head[1] = mask | length;
  else if (lengthBytes === 2) {
    head[1] = mask | 126;
    head.writeUInt16BE(length, 2);
  } else {
    head[1] = mask | 127;
    head.writeBigUInt64BE(BigInt(length), 2);
  }
  return head;
}

/** How many header bytes a frame has, from its first two. */
export function wsHeaderBytes(b1: number): number {
  const len = b1 & 0x7f;
  return 2 + (len === 126 ? 2 : len === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}

export interface WsHeader {
  fin: boolean;
  opcode: number;
  /** The masking key, or undefined when the frame is not masked. */
  mask: Buffer | undefined;
  length: number;
}

/**
 * Reads a complete frame header (`wsHeaderBytes` long). Throws saying what was found when a
 * reserved bit is set, the length does not fit in 2^53, or a control frame is long or fragmented.
 */
export function decodeWsHeader(head: Buffer): WsHeader {
  const b0 = head[0] as number;
  const b1 = head[1] as number;
  if (b0 & 0x70) throw new Error(`reserved bits set in a frame header (0x${b0.toString(16)})`);
  const opcode = b0 & 0x0f;
  const fin = (b0 & 0x80) !== 0;
  let length = b1 & 0x7f;
  let at = 2;
  if (length === 126) {
    length = head.readUInt16BE(2);
    at = 4;
  } else if (length === 127) {
    const high = head.readUInt32BE(2);
    if (high > 0x1fffff) throw new Error('a frame length over 2^53 bytes');
    length = high * 2 ** 32 + head.readUInt32BE(6);
    at = 10;
  }
  if (opcode >= 8 && (length > 125 || !fin)) {
    throw new Error(`a control frame (opcode ${opcode}) of ${length} bytes, fin ${fin}`);
  }
  const mask = b1 & 0x80 ? head.subarray(at, at + 4) : undefined;
  return { fin, opcode, mask, length };
}

/** XORs `data` with a masking key in place (RFC 6455 5.3); a no-op for an all-zero key. */
export function unmask(data: Buffer, mask: Buffer): void {
  if (mask.readUInt32LE(0) === 0) return;
  for (let i = 0; i < data.length; i++) data[i] = (data[i] as number) ^ (mask[i & 3] as number);
}
