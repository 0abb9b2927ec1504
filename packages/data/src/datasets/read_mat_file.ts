import { inflateSync } from 'node:zlib';

/** A MATLAB array read from a MAT-file, column-major as MATLAB stores it. */
export type MatValue =
  | { readonly kind: 'numeric'; readonly dims: readonly number[]; readonly data: Float64Array }
  | { readonly kind: 'char'; readonly dims: readonly number[]; readonly text: string }
  | {
      readonly kind: 'struct';
      readonly dims: readonly number[];
      readonly fields: readonly string[];
      readonly elements: readonly ReadonlyMap<string, MatValue>[];
    }
  | { readonly kind: 'cell'; readonly dims: readonly number[]; readonly cells: readonly MatValue[] }
  | { readonly kind: 'unsupported'; readonly dims: readonly number[]; readonly mxClass: number };

/** A MAT-file that is not a readable MATLAB 5.0 file: says what was found. */
export class MatFileError extends Error {
  override readonly name = 'MatFileError';
}

// Data types of MAT-file elements (MATLAB's "MAT-File Format", table 1-1).
const MI_INT8 = 1;
const MI_UINT8 = 2;
const MI_INT16 = 3;
const MI_UINT16 = 4;
const MI_INT32 = 5;
const MI_UINT32 = 6;
const MI_SINGLE = 7;
const MI_DOUBLE = 9;
const MI_INT64 = 12;
const MI_UINT64 = 13;
const MI_MATRIX = 14;
const MI_COMPRESSED = 15;
const MI_UTF8 = 16;
const MI_UTF16 = 17;

// Array classes (table 1-3).
const MX_CELL = 1;
const MX_STRUCT = 2;
const MX_CHAR = 4;
const MX_DOUBLE = 6;
const MX_UINT64 = 15;

/** Bytes per value of each numeric element type (and of the UTF-8 and UTF-16 text types). */
const BYTES: Record<number, number> = {
  [MI_INT8]: 1,
  [MI_UINT8]: 1,
  [MI_INT16]: 2,
  [MI_UINT16]: 2,
  [MI_INT32]: 4,
  [MI_UINT32]: 4,
  [MI_SINGLE]: 4,
  [MI_DOUBLE]: 8,
  [MI_INT64]: 8,
  [MI_UINT64]: 8,
  [MI_UTF8]: 1,
  [MI_UTF16]: 2,
};

/**
 * Reads the variables of a MATLAB 5.0 (v5, v6 or v7) MAT-file: numeric, logical, char, struct and
 * cell arrays, plain or in zlib-compressed (`miCOMPRESSED`) elements, little- or big-endian.
 * Other classes (sparse, objects, functions) come back as `'unsupported'`. Throws a
 * {@link MatFileError} for anything else (a v4 or HDF5-based v7.3 file, truncated data).
 */
export function readMatFile(bytes: Uint8Array): Map<string, MatValue> {
  if (bytes.length < 128) {
    throw new MatFileError(
      `a ${bytes.length}-byte file, shorter than a MAT-file's 128-byte header`,
    );
  }
  const text = new TextDecoder('latin1').decode(bytes.subarray(0, 116));
  if (text.startsWith('MATLAB 7.3')) {
    throw new MatFileError(
      "a MATLAB 7.3 (HDF5) MAT-file; save it with -v7 (or scipy.io.savemat's format='5')",
    );
  }
  const endian = String.fromCharCode(bytes[126]!, bytes[127]!);
  if (!text.startsWith('MATLAB 5.0') || (endian !== 'IM' && endian !== 'MI')) {
    throw new MatFileError(`a file whose header starts '${printable(text.slice(0, 24))}'`);
  }
  const reader = new ElementReader(endian === 'IM');
  const variables = new Map<string, MatValue>();
  let at = 128;
  while (at + 8 <= bytes.length) {
    const element = reader.element(bytes, at);
    at = element.next;
    let { type, data } = element;
    if (type === MI_COMPRESSED) {
      data = inflate(data);
      ({ type, data } = reader.element(data, 0));
    }
    if (type !== MI_MATRIX) continue; // subsystem data and the like
    const { name, value } = reader.matrix(data);
    variables.set(name, value);
  }
  return variables;
}

function inflate(data: Uint8Array): Uint8Array {
  try {
    return inflateSync(data);
  } catch (error) {
    throw new MatFileError(
      `a compressed element that fails to inflate: ${(error as Error).message}`,
    );
  }
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

/** Reads tagged data elements in one byte order. */
class ElementReader {
  constructor(private readonly little: boolean) {}

  /** The element whose tag is at `at`: its type, its data, and where the next element starts. */
  element(bytes: Uint8Array, at: number): { type: number; data: Uint8Array; next: number } {
    if (at + 8 > bytes.length) throw new MatFileError(`an element tag cut off at byte ${at}`);
    const view = new DataView(bytes.buffer, bytes.byteOffset + at, 8);
    const first = view.getUint32(0, this.little);
    const small = first >>> 16;
    if (small !== 0) {
      // Small data element format: type and size share the first 4 bytes, data the next 4.
      if (small > 4) throw new MatFileError(`a small element of ${small} bytes at byte ${at}`);
      return { type: first & 0xffff, data: bytes.subarray(at + 4, at + 4 + small), next: at + 8 };
    }
    const size = view.getUint32(4, this.little);
    const end = at + 8 + size;
    if (end > bytes.length) {
      throw new MatFileError(`an element of ${size} bytes at byte ${at} that the file cuts off`);
    }
    // Elements are padded to 8 bytes, except compressed ones.
    const next = first === MI_COMPRESSED ? end : at + 8 + Math.ceil(size / 8) * 8;
    return { type: first, data: bytes.subarray(at + 8, end), next };
  }

  /** Reads the contents of an `miMATRIX` element. */
  matrix(data: Uint8Array): { name: string; value: MatValue } {
    if (data.length === 0)
      return { name: '', value: { kind: 'numeric', dims: [0, 0], data: new Float64Array(0) } };
    let at = 0;
    const next = () => {
      if (at >= data.length) throw new MatFileError('an array element that ends too early');
      const element = this.element(data, at);
      at = element.next;
      return element;
    };
    const flags = this.numbers(next());
    const mxClass = (flags[0] ?? 0) & 0xff;
    const dims = Array.from(this.numbers(next()));
    const name = latin1(next().data);
    const count = dims.reduce((a, b) => a * b, 1);
    if (mxClass === MX_CHAR) {
      const chars = next();
      const text =
        chars.type === MI_UTF8
          ? new TextDecoder('utf-8').decode(chars.data)
          : fromCharCodes(this.numbers(chars));
      return { name, value: { kind: 'char', dims, text: columnMajorRows(text, dims) } };
    }
    if (mxClass >= MX_DOUBLE && mxClass <= MX_UINT64) {
      return { name, value: { kind: 'numeric', dims, data: this.numbers(next()) } };
    }
    if (mxClass === MX_STRUCT) {
      const nameLength = this.numbers(next())[0] ?? 0;
      const packed = next().data;
      const fields: string[] = [];
      for (let k = 0; nameLength > 0 && k + nameLength <= packed.length; k += nameLength) {
        fields.push(latin1(packed.subarray(k, k + nameLength)));
      }
      const elements: Map<string, MatValue>[] = [];
      for (let e = 0; e < count; e++) {
        const element = new Map<string, MatValue>();
        for (const field of fields) element.set(field, this.child(next()));
        elements.push(element);
      }
      return { name, value: { kind: 'struct', dims, fields, elements } };
    }
    if (mxClass === MX_CELL) {
      const cells = Array.from({ length: count }, () => this.child(next()));
      return { name, value: { kind: 'cell', dims, cells } };
    }
    return { name, value: { kind: 'unsupported', dims, mxClass } };
  }

  private child(element: { type: number; data: Uint8Array }): MatValue {
    if (element.type !== MI_MATRIX) {
      throw new MatFileError(`an element of type ${element.type} where an array should be`);
    }
    return this.matrix(element.data).value;
  }

  /** The values of a numeric element, whatever its stored type, as float64. */
  numbers(element: { type: number; data: Uint8Array }): Float64Array {
    const { type, data } = element;
    const size = BYTES[type];
    if (size === undefined) {
      throw new MatFileError(`an element of type ${type} where numbers should be`);
    }
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const out = new Float64Array(Math.floor(data.length / size));
    const little = this.little;
    for (let k = 0; k < out.length; k++) {
      const o = k * size;
      switch (type) {
        case MI_INT8:
          out[k] = view.getInt8(o);
          break;
        case MI_UINT8:
        case MI_UTF8:
          out[k] = view.getUint8(o);
          break;
        case MI_INT16:
          out[k] = view.getInt16(o, little);
          break;
        case MI_UINT16:
        case MI_UTF16:
          out[k] = view.getUint16(o, little);
          break;
        case MI_INT32:
          out[k] = view.getInt32(o, little);
          break;
        case MI_UINT32:
          out[k] = view.getUint32(o, little);
          break;
        case MI_SINGLE:
          out[k] = view.getFloat32(o, little);
          break;
        case MI_DOUBLE:
          out[k] = view.getFloat64(o, little);
          break;
        case MI_INT64:
          out[k] = Number(view.getBigInt64(o, little));
          break;
        case MI_UINT64:
          out[k] = Number(view.getBigUint64(o, little));
          break;
      }
    }
    return out;
  }
}

/** A char array's text row by row (MATLAB stores it column-major); rows joined by newlines. */
function columnMajorRows(text: string, dims: readonly number[]): string {
  const rows = dims[0] ?? 1;
  if (rows <= 1 || dims.length !== 2) return text;
  const columns = dims[1] ?? 0;
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    let line = '';
    for (let c = 0; c < columns; c++) line += text[c * rows + r] ?? '';
    lines.push(line);
  }
  return lines.join('\n');
}

function fromCharCodes(codes: Float64Array): string {
  let text = '';
  for (let k = 0; k < codes.length; k += 4096) {
    text += String.fromCharCode(...codes.subarray(k, k + 4096));
  }
  return text;
}

/** A NUL-padded name. */
function latin1(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder('latin1').decode(end < 0 ? bytes : bytes.subarray(0, end));
}
