/**
 * The bytes a collective reads or writes. Collectives on disjoint regions run concurrently; one
 * whose region overlaps a collective still in flight waits for it, so call order is kept where
 * it matters.
 */
export interface Region {
  buffer: ArrayBufferLike;
  start: number;
  end: number;
}

export function regionOf(view: ArrayBufferView): Region {
  return { buffer: view.buffer, start: view.byteOffset, end: view.byteOffset + view.byteLength };
}

export function overlaps(a: Region, b: Region): boolean {
  return a.buffer === b.buffer && a.start < b.end && b.start < a.end;
}
