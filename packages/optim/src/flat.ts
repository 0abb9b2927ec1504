import { tensor, type Tensor } from '@tensorflow/tfjs-core';

/** Concatenates named tensors (in the given order) into one buffer, for one collective. */
export function flatten(
  names: readonly string[],
  tensors: Map<string, Tensor>,
  extra: number[] = [],
): Float32Array {
  let size = extra.length;
  for (const n of names) size += (tensors.get(n) as Tensor).size;
  const out = new Float32Array(size);
  let at = 0;
  for (const n of names) {
    const t = tensors.get(n);
    if (t === undefined) throw new Error(`flatten: no tensor named '${n}'`);
    out.set(t.dataSync() as Float32Array, at);
    at += t.size;
  }
  out.set(extra, at);
  return out;
}

/** The inverse of `flatten`: new tensors shaped like `like`, and the extra values at the end. */
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
    tensors.set(n, tensor(buf.subarray(at, at + size), shape, 'float32'));
    at += size;
  }
  return { tensors, extra: buf.subarray(at) };
}
