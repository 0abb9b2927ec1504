/**
 * What every rank must agree on for a collective: operation, sequence number, bucket, length and
 * wire dtype. Every data frame carries it; a receiver compares it with its own.
 */
import { CollectiveOp, type FrameHeader, WireDtype } from './frame.js';

export interface Fingerprint {
  op: CollectiveOp;
  seq: number;
  bucket: number;
  length: number;
  dtype: WireDtype;
}

const OP_NAMES: Record<number, string> = {
  [CollectiveOp.allReduce]: 'allReduce',
  [CollectiveOp.allGather]: 'allGather',
  [CollectiveOp.broadcast]: 'broadcast',
};
const DTYPE_NAMES: Record<number, string> = {
  [WireDtype.float32]: 'float32',
  [WireDtype.float16]: 'float16',
};

/** e.g. `allReduce #12 (bucket 3, 1000 elements, float32 on the wire)`. */
export function describe(f: Fingerprint): string {
  const op = OP_NAMES[f.op] ?? `op ${f.op}`;
  const dtype = DTYPE_NAMES[f.dtype] ?? `dtype ${f.dtype}`;
  return `${op} #${f.seq} (bucket ${f.bucket}, ${f.length} elements, ${dtype} on the wire)`;
}

/** Undefined when `h` agrees with `mine`; otherwise says which fields differ, theirs and ours. */
export function mismatch(mine: Fingerprint, h: FrameHeader): string | undefined {
  const diffs: string[] = [];
  if (h.op !== mine.op) diffs.push(`op ${OP_NAMES[h.op] ?? h.op} vs ${OP_NAMES[mine.op]}`);
  if (h.bucket !== mine.bucket) diffs.push(`bucket ${h.bucket} vs ${mine.bucket}`);
  if (h.length !== mine.length) diffs.push(`length ${h.length} vs ${mine.length}`);
  if (h.dtype !== mine.dtype) {
    diffs.push(`dtype ${DTYPE_NAMES[h.dtype] ?? h.dtype} vs ${DTYPE_NAMES[mine.dtype]}`);
  }
  return diffs.length > 0 ? diffs.join(', ') : undefined;
}
