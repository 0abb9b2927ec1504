import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const committed = join(packageDir, 'wasm', 'thor_kernels.wasm');
const hasClang = (() => {
  try {
    execFileSync('wasm-ld', ['--version'], { stdio: 'pipe' });
    return execFileSync('clang', ['--print-targets'], { stdio: 'pipe' })
      .toString()
      .includes('wasm32');
  } catch {
    return false;
  }
})();

describe('wasm/thor_kernels.wasm', () => {
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
      'bn_train',
      'bn_train_grad',
      'col2im_add',
      'copy_f32',
      'crop_nhwc',
      'fill_zero',
      'filter_phase',
      'im2col_t',
      'max_pool_grad',
      'relu_grad',
      'scatter_phase',
      'transpose_batched',
    ]);
  });

  it.skipIf(!hasClang)(
    'is what scripts/build-wasm.sh builds from csrc/ (needs clang and lld)',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'thor-wasm-'));
      try {
        const out = join(dir, 'k.wasm');
        execFileSync(join(packageDir, 'scripts', 'build-wasm.sh'), [out]);
        expect(readFileSync(out).equals(readFileSync(committed))).toBe(true);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
