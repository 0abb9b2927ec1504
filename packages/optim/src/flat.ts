import { type Tensor } from '@tensorflow/tfjs-core';
import { readInto, tensorOwning } from '@thor-ts/backend';

/**
 * Concatenates named tensors (in the given order) and `extra` values into one buffer, for one
 * collective. `into`, a buffer of exactly that length (the one the last step reduced), is filled
 * and returned instead of a new one, so a training loop reuses one buffer from step to step; a
 * buffer of another length is left alone.
 */
export function flatten(
  names: readonly string[],
  tensors: Map<string, Tensor>,
  extra: readonly number[] = [],
  into?: Float32Array,
): Float32Array {
  let size = extra.length;
  for (const n of names) {
    const t = tensors.get(n);
    if (t === undefined) throw new Error(`flatten: no tensor named '${n}'`);
    size += t.size;
  }
  const out = into?.length === size ? into : new Float32Array(size);
  let at = 0;
  for (const n of names) {
    const t = tensors.get(n) as Tensor;
    readInto(t, out, at);
    at += t.size;
  }
  out.set(extra, at);
  return out;
}

/**
 * The inverse of `flatten`: new tensors shaped like `like` (their own copies of the values, so
 * `buf` may be refilled while they live), and the extra values at the end (a view of `buf`).
 */
export function unflatten(
  names: readonly string[],
  like: Map<string, { shape: number[] }>,
  buf: Float32Array,
): { tensors: Map<string, Tensor>; extra: Float32Array } {
  const tensors = new Map<string, Tensor>();
  let at = 0;
  for (const n of names) {
    const shape = (like.get(n) as { shape: number[] }).shape;
    const size = shape.reduce((a, b) => a * b, 1);
    tensors.set(n, tensorOwning(buf.subarray(at, at + size), shape));
    at += size;
  }
  return { tensors, extra: buf.subarray(at) };
}
