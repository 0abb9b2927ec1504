import { readFileSync } from 'node:fs';

/**
 * A reader of TensorBoard event files written apart from the writer's code, for the tests: its
 * own CRC-32C (bit by bit, no table), its own TFRecord framing and protobuf decoding.
 */

/** CRC-32C bit by bit: reflected Castagnoli polynomial 0x82f63b78, initial and final XOR ~0. */
export function referenceCrc32c(bytes: Uint8Array): number {
  let crc = ~0 >>> 0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return ~crc >>> 0;
}

/** TFRecord's mask: rotate right by 15, add 0xa282ead8 (mod 2^32). */
export function referenceMask(crc: number): number {
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

export interface ReadEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  /** Summary values in order: tag and simple_value (float32). */
  scalars: [string, number][];
  /** SessionLog.status (1: START), when the event holds one. */
  sessionStatus?: number;
}

/** The records of a TFRecord file, each checked against both of its masked CRCs. */
export function readRecords(path: string): Uint8Array[] {
  const file = readFileSync(path);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const records: Uint8Array[] = [];
  let at = 0;
  while (at < file.length) {
    if (at + 12 > file.length) throw new Error(`${path}: a record header cut short at ${at}`);
    const length = Number(view.getBigUint64(at, true));
    const lengthCrc = view.getUint32(at + 8, true);
    if (lengthCrc !== referenceMask(referenceCrc32c(file.subarray(at, at + 8)))) {
      throw new Error(`${path}: the length's CRC at byte ${at} does not match`);
    }
    const data = file.subarray(at + 12, at + 12 + length);
    if (data.length !== length || at + 16 + length > file.length) {
      throw new Error(`${path}: a record cut short at ${at}`);
    }
    if (view.getUint32(at + 12 + length, true) !== referenceMask(referenceCrc32c(data))) {
      throw new Error(`${path}: the data's CRC of the record at byte ${at} does not match`);
    }
    records.push(data);
    at += 16 + length;
  }
  return records;
}

/** Every Event of an event file. */
export function readEvents(path: string): ReadEvent[] {
  return readRecords(path).map(decodeEvent);
}

/** Event { 1 wall_time double, 2 step int64, 3 file_version string, 5 summary, 6 session_log }. */
export function decodeEvent(bytes: Uint8Array): ReadEvent {
  const event: ReadEvent = { wallTime: 0, step: 0, scalars: [] };
  for (const f of fields(bytes)) {
    if (f.field === 1 && f.wire === 1) event.wallTime = f.view.getFloat64(0, true);
    else if (f.field === 2 && f.wire === 0) event.step = f.varint;
    else if (f.field === 3 && f.wire === 2) event.fileVersion = new TextDecoder().decode(f.bytes);
    else if (f.field === 5 && f.wire === 2) {
      // Summary { repeated Value value = 1 }, Value { 1 tag string, 2 simple_value float }.
      for (const v of fields(f.bytes)) {
        let tag = '';
        let value = NaN;
        for (const g of fields(v.bytes)) {
          if (g.field === 1 && g.wire === 2) tag = new TextDecoder().decode(g.bytes);
          if (g.field === 2 && g.wire === 5) value = g.view.getFloat32(0, true);
        }
        event.scalars.push([tag, value]);
      }
    } else if (f.field === 6 && f.wire === 2) {
      event.sessionStatus = fields(f.bytes).find((g) => g.field === 1)?.varint ?? 0;
    } else throw new Error(`unexpected Event field ${f.field} (wire type ${f.wire})`);
  }
  return event;
}

interface Field {
  field: number;
  wire: number;
  varint: number;
  bytes: Uint8Array;
  view: DataView;
}

/** A protobuf message's fields in order (wire types 0, 1, 2 and 5). */
function fields(bytes: Uint8Array): Field[] {
  const out: Field[] = [];
  let at = 0;
  const varint = () => {
    let n = 0;
    for (let shift = 1; ; shift *= 128) {
      const b = bytes[at++];
      if (b === undefined) throw new Error('a varint cut short');
      n += (b & 0x7f) * shift;
      if (b < 0x80) return n;
    }
  };
  while (at < bytes.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    let value = 0;
    let size = 0;
    if (wire === 0) value = varint();
    else if (wire === 1) size = 8;
    else if (wire === 5) size = 4;
    else if (wire === 2) size = varint();
    else throw new Error(`unexpected wire type ${wire}`);
    const part = bytes.subarray(at, at + size);
    at += size;
    out.push({
      field,
      wire,
      varint: value,
      bytes: part,
      view: new DataView(part.buffer, part.byteOffset, part.byteLength),
    });
  }
  return out;
}
