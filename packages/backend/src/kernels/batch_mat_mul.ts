import type { BatchMatMulAttrs, TensorInfo } from '@tensorflow/tfjs-core';

import type { WasmContext } from '../wasm/wasm_context.js';

/**
 * BatchMatMul on wasm through XNNPACK's GEMM for every case. tfjs-backend-wasm 4.22 uses XNNPACK
 * only without transposes and with one matrix; a transpose or a batch falls to a naive loop that
 * runs 10–20× slower. Here a transposed operand is laid out first (`transpose_batched`) and each
 * matrix of a batch gets its own GEMM.
 */
export function batchMatMul(
  ctx: WasmContext,
  a: TensorInfo,
  b: TensorInfo,
  attrs: BatchMatMulAttrs,
): TensorInfo {
  for (const [name, t] of [
    ['a', a],
    ['b', b],
  ] as const) {
    if (t.dtype !== 'float32') {
      throw new Error(`BatchMatMul on wasm: expected '${name}' of dtype float32, found ${t.dtype}`);
    }
    if (t.shape.length < 2) {
      throw new Error(`BatchMatMul on wasm: expected '${name}' of rank ≥ 2, found [${t.shape}]`);
    }
  }
  const { transposeA, transposeB } = attrs;
  const [batchA, rowsA, colsA] = as3d(a.shape);
  const [batchB, rowsB, colsB] = as3d(b.shape);
  const [m, kA] = transposeA ? [colsA, rowsA] : [rowsA, colsA];
  const [kB, n] = transposeB ? [colsB, rowsB] : [rowsB, colsB];
  if (kA !== kB) {
    throw new Error(
      `BatchMatMul on wasm: inner dimensions differ: a [${a.shape}] (transposeA=${transposeA}) ` +
        `has ${kA}, b [${b.shape}] (transposeB=${transposeB}) has ${kB}`,
    );
  }
  const outer = broadcastOuter(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batch = outer.reduce((p, d) => p * d, 1);
  if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) {
    throw new Error(
      `BatchMatMul on wasm: expected batch dimensions equal or 1, found a [${a.shape}] and b [${b.shape}]`,
    );
  }
  const k = ctx.k;
  if (m * n * batch === 0 || kA === 0) {
    // An empty product, or a sum over nothing: all zeros, nothing for XNNPACK to do.
    const out = ctx.alloc([...outer, m, n]);
    k.fillZero(ctx.ptr(out), batch * m * n);
    return out;
  }
  const laidOut = (t: TensorInfo, tb: number, rows: number, cols: number, transpose: boolean) => {
    if (!transpose) return { t: ctx.view(t, [tb, rows, cols]), owned: false };
    const out = ctx.alloc([tb, cols, rows]);
    k.transposeBatched(ctx.ptr(t), ctx.ptr(out), tb, rows, cols);
    return { t: out, owned: true };
  };
  const A = laidOut(a, batchA, rowsA, colsA, transposeA);
  const B = laidOut(b, batchB, rowsB, colsB, transposeB);
  let out: TensorInfo;
  if (batch === 1) {
    out = ctx.matmul(ctx.view(A.t, [m, kA]), ctx.view(B.t, [kA, n]));
  } else {
    out = ctx.alloc([batch, m, n]);
    const slice = (src: TensorInfo, i: number, rows: number, cols: number) => {
      const part = ctx.alloc([rows, cols]);
      k.copyF32(ctx.ptr(src) + i * rows * cols * 4, ctx.ptr(part), rows * cols);
      return part;
    };
    let bShared: TensorInfo | undefined;
    for (let i = 0; i < batch; i++) {
      const ai = slice(A.t, batchA === 1 ? 0 : i, m, kA);
      // A shared right-hand matrix is copied once, so XNNPACK packs it once.
      const bi = batchB === 1 ? (bShared ??= slice(B.t, 0, kA, n)) : slice(B.t, i, kA, n);
      const oi = ctx.matmul(ai, bi);
      k.copyF32(ctx.ptr(oi), ctx.ptr(out) + i * m * n * 4, m * n);
      ctx.free(ai, oi);
      if (batchB !== 1) ctx.free(bi);
    }
    if (bShared !== undefined) ctx.free(bShared);
  }
  if (A.owned) ctx.free(A.t);
  if (B.owned) ctx.free(B.t);
  return ctx.view(out, [...outer, m, n]);
}

function as3d(shape: number[]): [number, number, number] {
  const rows = shape[shape.length - 2] as number;
  const cols = shape[shape.length - 1] as number;
  return [shape.slice(0, -2).reduce((p, d) => p * d, 1), rows, cols];
}

function broadcastOuter(a: number[], b: number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `BatchMatMul on wasm: batch dimensions [${a}] and [${b}] do not broadcast (axis ${i})`,
      );
    }
    out.push(Math.max(da, db));
  }
  return out;
}
