import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { hasWasmToolchain, rebuildsCommittedWasm } from '../../../wasm_build_check.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const committed = join(packageDir, 'wasm', 'training_kernels.wasm');

describe('wasm/training_kernels.wasm', () => {
  it("imports the backend's heap as its only import and exports the kernels", () => {
    const module = new WebAssembly.Module(readFileSync(committed));
    expect(WebAssembly.Module.imports(module)).toEqual([
      { module: 'env', name: 'memory', kind: 'memory' },
    ]);
    const exports = WebAssembly.Module.exports(module)
      .map((e: { name: string }) => e.name)
      .sort();
    expect(exports).toEqual([
      'add_f32',
      'add_relu',
      'bn_running',
      'bn_train',
      'bn_train_grad',
      'col2im_add',
      'conv_filter_grad',
      'conv_filter_grad_scratch_floats',
      'conv_gemm',
      'conv_gemm_scratch_floats',
      'copy_f32',
      'crop_nhwc',
      'fill_zero',
      'filter_phase',
      'gemm_f32',
      'gemm_f32_packed',
      'gemm_pack',
      'gemm_packed_floats',
      'gemm_scratch_floats',
      'im2col',
      'im2col_t',
      'max_pool_grad',
      'relu_grad',
      'scatter_phase',
      'transpose_batched',
      'winograd_conv',
      'winograd_filter',
      'winograd_filter_floats',
      'winograd_filter_grad',
      'winograd_filter_grad_out',
      'winograd_grad_scratch_floats',
      'winograd_scratch_floats',
    ]);
  });

  it.skipIf(!hasWasmToolchain('clang-16'))(
    'is what scripts/build-wasm.sh builds from csrc/, with the relaxed and shared builds (needs clang-16 and lld-16)',
    () => {
      expect(rebuildsCommittedWasm(packageDir, committed, ['_relaxed', '_shared'])).toBe(true);
    },
  );
});
