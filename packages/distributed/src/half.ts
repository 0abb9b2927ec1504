/**
 * IEEE binary16 conversion for fp16 on the wire: round to nearest even, overflow to ±Infinity,
 * subnormals kept, NaN kept as a quiet NaN.
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function toHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0] as number;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = man | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let h = m >>> shift;
    if (rest > half || (rest === half && (h & 1) !== 0)) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h += 1; // may carry into the exponent
  return sign | h;
}

function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 0x1f) return man !== 0 ? NaN : sign * Infinity;
  return sign * (1024 + man) * 2 ** (exp - 25);
}

const DECODE = new Float32Array(65536);
for (let i = 0; i < 65536; i++) DECODE[i] = fromHalfBits(i);

/** `src` rounded to binary16. */
export function toHalf(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = toHalfBits(src[i] as number);
  return out;
}

/** Writes the float32 values of binary16 `src` into `out` (same length). */
export function fromHalf(src: Uint16Array, out: Float32Array): Float32Array {
  for (let i = 0; i < src.length; i++) out[i] = DECODE[src[i] as number] as number;
  return out;
}

/** Rounds `x` in place to the nearest binary16 value, so a sender keeps what its receivers get. */
export function roundToHalf(x: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] = DECODE[toHalfBits(x[i] as number)] as number;
}
