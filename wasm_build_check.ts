import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Shared by the packages that commit a wasm module built from C (backend, data, distributed,
 * optim): whether this machine has the toolchain their `scripts/build-wasm.sh` needs (Debian's
 * `clang` and lld, or the versioned `clang-16` the backend's script calls), and whether that
 * script rebuilds the committed module byte for byte.
 */
export function hasWasmToolchain(clang = 'clang'): boolean {
  let found = toolchains.get(clang);
  if (found === undefined) {
    try {
      const targets = execFileSync(clang, ['--print-targets'], { stdio: 'pipe' }).toString();
      const linker = execFileSync(clang, ['--print-prog-name=wasm-ld'], { stdio: 'pipe' });
      execFileSync(linker.toString().trim(), ['--version'], { stdio: 'pipe' });
      found = targets.includes('wasm32');
    } catch {
      found = false;
    }
    toolchains.set(clang, found);
  }
  return found;
}

/** hasWasmToolchain's answer per compiler: each asks by running it, and tests ask more than once. */
const toolchains = new Map<string, boolean>();

/**
 * Runs `<packageDir>/scripts/build-wasm.sh` into a temporary file and compares it with `committed`,
 * and each other module the script writes beside it (`<name><suffix>.wasm`, one per `suffixes`)
 * with the committed file of the same suffix.
 */
export function rebuildsCommittedWasm(
  packageDir: string,
  committed: string,
  suffixes: string[] = [],
): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'thor-wasm-build-'));
  try {
    const out = join(dir, 'module.wasm');
    execFileSync(join(packageDir, 'scripts', 'build-wasm.sh'), [out]);
    const variant = (path: string, suffix: string) => path.replace(/\.wasm$/, `${suffix}.wasm`);
    return ['', ...suffixes].every((s) =>
      readFileSync(variant(out, s)).equals(readFileSync(variant(committed, s))),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
