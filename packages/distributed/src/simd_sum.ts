/**
 * The ring's reduce-scatter additions in wasm SIMD. wasm reaches only its own memory, so a
 * received segment is read straight into a landing area in it (the link's placement), this rank's
 * own segment is copied next to it, added there four floats at a time, and copied back: three
 * passes, two of them memcpy, that still take less time than the scalar JavaScript loop's one.
 * The operands and their order are those of {@link addInto}, so both give the same bytes.
 */
import { readFileSync } from 'node:fs';

import { addInto } from './ring_schedule.js';

/** What this file uses of the WebAssembly JS API, which @types/node 20 does not declare. */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const wasmUrl = new URL('../wasm/sum.wasm', import.meta.url);
const PAGE_BYTES = 64 << 10;
/** The module's first page is its own (C's stack and data, though add_into uses neither). */
const LANDING_OFFSET = PAGE_BYTES;
/** Segments above this size are summed in JavaScript rather than reserve that much wasm memory. */
const MAX_SEGMENT_BYTES = 64 << 20;

let compiled: object | null | undefined;

export class SimdSum {
  /** Received segments land after the module's page; the own segment is copied after them. */
  private readonly landing: Float32Array;
  private readonly own: Float32Array;

  private constructor(
    private readonly memory: WasmMemory,
    private readonly add: (own: number, received: number, n: number) => void,
    private readonly maxElems: number,
  ) {
    this.landing = new Float32Array(memory.buffer, LANDING_OFFSET, maxElems);
    this.own = new Float32Array(memory.buffer, LANDING_OFFSET + maxElems * 4, maxElems);
  }

  /**
   * For segments of up to `segmentBytes`; undefined where wasm SIMD is not available (or the
   * segment is over 64 MiB), and the caller sums in JavaScript.
   */
  static create(segmentBytes: number): SimdSum | undefined {
    if (segmentBytes > MAX_SEGMENT_BYTES) return undefined;
    try {
      compiled ??= new wasm.Module(readFileSync(wasmUrl));
    } catch {
      compiled = null;
    }
    if (!compiled) return undefined;
    const maxElems = Math.ceil(segmentBytes / 16) * 4;
    const memory = new wasm.Memory({
      initial: Math.ceil((LANDING_OFFSET + maxElems * 8) / PAGE_BYTES),
    });
    const add = new wasm.Instance(compiled, { env: { memory } }).exports.add_into;
    if (typeof add !== 'function') {
      throw new Error(`${wasmUrl.pathname}: expected an export named 'add_into', found none`);
    }
    return new SimdSum(memory, add as (own: number, received: number, n: number) => void, maxElems);
  }

  /**
   * Where a received segment of `count` floats should be read to, for `addInto` to add it in
   * wasm: valid until the next call. The ring adds each segment as soon as it has arrived, and a
   * link receives one frame at a time, so one landing area serves every collective.
   */
  landingFor(count: number): Float32Array | undefined {
    return count <= this.maxElems ? this.landing.subarray(0, count) : undefined;
  }

  /** view[i] = data[i] + view[i], in wasm when `data` is the landing area. */
  addInto(view: Float32Array, data: Float32Array): void {
    if (data.buffer !== this.memory.buffer || data.byteOffset !== LANDING_OFFSET) {
      return addInto(view, data);
    }
    const n = Math.min(view.length, data.length);
    const own = this.own.subarray(0, n);
    own.set(view.subarray(0, n));
    this.add(own.byteOffset, LANDING_OFFSET, n);
    view.set(own);
  }
}
