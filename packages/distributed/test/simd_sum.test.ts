import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { hasWasmToolchain, rebuildsCommittedWasm } from '../../../wasm_build_check.js';
import { addInto } from '../dist/ring_schedule.js';
import { SimdSum } from '../dist/simd_sum.js';
import { values } from './with_ring.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const committed = join(packageDir, 'wasm', 'sum.wasm');
/** The WebAssembly JS API's reflection, which @types/node 20 does not declare. */
const wasm = (
  globalThis as unknown as {
    WebAssembly: {
      Module: (new (bytes: Uint8Array) => object) & {
        imports(m: object): { module: string; name: string; kind: string }[];
        exports(m: object): { name: string; kind: string }[];
      };
    };
  }
).WebAssembly;
const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('SimdSum', () => {
  it('adds a landed segment to the own one with the same bytes as the JavaScript loop', () => {
    const sum = SimdSum.create(1 << 20);
    expect(sum).toBeDefined();
    // 1 and 15: only the scalar tail; 262 144: a whole 1 MiB segment; 100 003: both parts.
    for (const n of [1, 15, 16, 100_003, 262_144]) {
      const own = values(n, 7);
      const received = values(n, 8).map((x) => x * 1e3);
      const want = own.slice();
      addInto(want, received);
      const landing = sum?.landingFor(n) as Float32Array;
      landing.set(received);
      sum?.addInto(own, landing);
      expect(bytes(own).equals(bytes(want))).toBe(true);
    }
  });

  it('adds in JavaScript when the data did not land in its memory, and refuses oversized landings', () => {
    const sum = SimdSum.create(4096) as SimdSum;
    expect(sum.landingFor(1024)?.length).toBe(1024);
    expect(sum.landingFor(1025)).toBeUndefined();
    const own = values(5000, 1);
    const want = own.slice();
    const data = values(5000, 2);
    addInto(want, data);
    sum.addInto(own, data);
    expect(bytes(own).equals(bytes(want))).toBe(true);
  });

  it('is a module importing only its memory and exporting add_into', () => {
    const module = new wasm.Module(readFileSync(committed));
    expect(wasm.Module.imports(module)).toEqual([
      { module: 'env', name: 'memory', kind: 'memory' },
    ]);
    expect(wasm.Module.exports(module)).toEqual([{ name: 'add_into', kind: 'function' }]);
  });

  it.skipIf(!hasWasmToolchain())(
    `is what scripts/build-wasm.sh builds from csrc/${hasWasmToolchain() ? '' : ' (skipped: needs clang and lld)'}`,
    () => {
      expect(rebuildsCommittedWasm(packageDir, committed)).toBe(true);
    },
  );
});
