/**
 * The protocol buffer bytes of the one TensorBoard message a scalar log needs, written by hand
 * (tensorflow/core/util/event.proto and summary.proto; only the fields used here):
 * Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
 * SessionLog session_log = 6 }, Summary { repeated Value value = 1 },
 * Value { string tag = 1; float simple_value = 2 }, SessionLog { SessionStatus status = 1 }.
 */
export interface EventFields {
  /** Seconds since the Unix epoch. */
  wallTime: number;
  /** The x axis: an integer ≥ 0. */
  step: number;
  /** 'brain.Event:2' in a file's first event. */
  fileVersion?: string;
  /** Summary values: a tag and a simple_value (stored as float32) each. */
  scalars?: [tag: string, value: number][];
  /** A SessionLog START: TensorBoard drops what earlier files logged at this step and after. */
  sessionStart?: boolean;
}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;
const SESSION_START = 1;

/** An Event's bytes. Fields at their default (step 0) are left out, as protobuf does. */
export function encodeEvent(e: EventFields): Uint8Array {
  if (!(Number.isSafeInteger(e.step) && e.step >= 0)) {
    throw new Error(`TensorBoard event: expected a step that is an integer ≥ 0, found ${e.step}`);
  }
  const event = new ProtoWriter().double(1, e.wallTime);
  if (e.step !== 0) event.uint(2, e.step);
  if (e.fileVersion !== undefined) event.string(3, e.fileVersion);
  if (e.scalars !== undefined) {
    const summary = new ProtoWriter();
    for (const [tag, value] of e.scalars) {
      summary.message(1, new ProtoWriter().string(1, tag).float(2, value));
    }
    event.message(5, summary);
  }
  if (e.sessionStart === true) event.message(6, new ProtoWriter().uint(1, SESSION_START));
  return event.finish();
}

/** Protobuf's wire format, field by field, into a growing list of bytes. */
class ProtoWriter {
  private readonly bytes: number[] = [];

  uint(field: number, n: number): this {
    return this.key(field, VARINT).varint(n);
  }

  double(field: number, x: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, true);
    this.key(field, FIXED64).bytes.push(...b);
    return this;
  }

  float(field: number, x: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, x, true);
    this.key(field, FIXED32).bytes.push(...b);
    return this;
  }

  string(field: number, s: string): this {
    return this.delimited(field, new TextEncoder().encode(s));
  }

  message(field: number, m: ProtoWriter): this {
    return this.delimited(field, m.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }

  private delimited(field: number, data: Uint8Array): this {
    this.key(field, LENGTH_DELIMITED)
      .varint(data.length)
      .bytes.push(...data);
    return this;
  }

  private key(field: number, wireType: number): this {
    return this.varint(field * 8 + wireType);
  }

  /** Seven bits a byte, least significant first (exact up to 2^53: no 32-bit bitwise ops). */
  private varint(n: number): this {
    while (n >= 0x80) {
      this.bytes.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.bytes.push(n);
    return this;
  }
}
