import { open, readFile, rename, rm } from 'node:fs/promises';

/** A tensor read from a safetensors file: float types as Float32Array, integers as Float64Array. */
export interface StoredTensor {
  dtype: string;
  shape: number[];
  data: Float32Array | Float64Array;
}

/** A tensor to write: float32 (`F32`) or int64 (`I64`, from exact integers). */
export interface TensorToStore {
  dtype: 'F32' | 'I64';
  shape: number[];
  data: ArrayLike<number>;
}

export interface SafetensorsFile {
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, string>;
}

const bytesPer: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};
const maxHeaderBytes = 100 * 1024 * 1024;

/** Parses the safetensors format (a length, a JSON header, raw little-endian data); `where` names the source in errors. */
export function parseSafetensors(bytes: Uint8Array, where: string): SafetensorsFile {
  const fail = (what: string): never => {
    throw new Error(`${where}: not a valid safetensors file: ${what}`);
  };
  if (bytes.length < 8) fail(`expected at least 8 bytes, found ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > maxHeaderBytes || 8 + headerLength > bytes.length) {
    fail(
      `header of ${headerLength} bytes does not fit in a file of ${bytes.length} bytes (truncated?)`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<
      string,
      unknown
    >;
  } catch (e) {
    return fail(`header is not JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, StoredTensor>();
  const metadata = (header['__metadata__'] ?? {}) as Record<string, string>;
  for (const [key, value] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    const {
      dtype,
      shape,
      data_offsets: offsets,
    } = value as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const size = bytesPer[dtype];
    if (size === undefined)
      fail(`'${key}' has dtype ${dtype}, expected one of ${Object.keys(bytesPer).join(', ')}`);
    if (!Array.isArray(shape) || !Array.isArray(offsets) || offsets.length !== 2)
      fail(`'${key}' lacks a shape or data_offsets`);
    const [begin, end] = offsets;
    const count = shape.reduce((a, b) => a * b, 1);
    if (end > dataLength)
      fail(`'${key}' ends at byte ${end} of ${dataLength} data bytes (truncated?)`);
    if (end - begin !== count * (size as number)) {
      fail(
        `'${key}' of shape [${shape}] and dtype ${dtype} needs ${count * (size as number)} bytes, found ${end - begin}`,
      );
    }
    tensors.set(key, {
      dtype,
      shape,
      data: decode(dtype, bytes.subarray(dataStart + begin, dataStart + end), count),
    });
  }
  return { tensors, metadata };
}

function decode(dtype: string, raw: Uint8Array, count: number): Float32Array | Float64Array {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (dtype) {
    case 'F32':
      return new Float32Array(raw.slice().buffer);
    case 'F64':
      return Float32Array.from(new Float64Array(raw.slice().buffer));
    case 'F16':
      return Float32Array.from({ length: count }, (_, i) => half(v.getUint16(2 * i, true)));
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const bits = new Uint32Array(count);
      for (let i = 0; i < count; i++) bits[i] = v.getUint16(2 * i, true) * 65536;
      return new Float32Array(bits.buffer);
    }
    case 'I64':
      return Float64Array.from({ length: count }, (_, i) => Number(v.getBigInt64(8 * i, true)));
    case 'I32':
      return Float64Array.from({ length: count }, (_, i) => v.getInt32(4 * i, true));
    case 'I16':
      return Float64Array.from({ length: count }, (_, i) => v.getInt16(2 * i, true));
    case 'I8':
      return Float64Array.from({ length: count }, (_, i) => v.getInt8(i));
    default:
      return Float64Array.from(raw);
  }
}

function half(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** Encodes tensors (in the order given) and string metadata as safetensors. */
export function encodeSafetensors(
  tensors: Map<string, TensorToStore>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header['__metadata__'] = metadata;
  let offset = 0;
  for (const [key, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== count)
      throw new Error(`safetensors: '${key}' has shape [${t.shape}] but ${t.data.length} values`);
    const bytes = count * (t.dtype === 'F32' ? 4 : 8);
    header[key] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    if (t.dtype === 'F32') {
      const f = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
      out.set(new Uint8Array(f.buffer, f.byteOffset, f.byteLength), at);
      at += f.byteLength;
    } else {
      for (let i = 0; i < t.data.length; i++, at += 8)
        view.setBigInt64(at, BigInt(Math.round(t.data[i] as number)), true);
    }
  }
  return out;
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return parseSafetensors(new Uint8Array(await readFile(path)), path);
}

/** Writes atomically: a temporary file beside `path`, flushed to disk, then renamed over it. */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, TensorToStore>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
