import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Shared by the packages that commit a wasm module built from C (backend, data): whether this
 * machine has the toolchain their `scripts/build-wasm.sh` needs (Debian's clang and lld), and
 * whether that script rebuilds the committed module byte for byte.
 */
export const hasWasmToolchain = (() => {
  try {
    execFileSync('wasm-ld', ['--version'], { stdio: 'pipe' });
    return execFileSync('clang', ['--print-targets'], { stdio: 'pipe' })
      .toString()
      .includes('wasm32');
  } catch {
    return false;
  }
})();

/** Runs `<packageDir>/scripts/build-wasm.sh` into a temporary file and compares it with `committed`. */
export function rebuildsCommittedWasm(packageDir: string, committed: string): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'thor-wasm-build-'));
  try {
    const out = join(dir, 'module.wasm');
    execFileSync(join(packageDir, 'scripts', 'build-wasm.sh'), [out]);
    return readFileSync(out).equals(readFileSync(committed));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
