#!/usr/bin/env bash
# Rebuilds wasm/training_kernels.wasm from csrc/training_kernels.c (128-bit SIMD), the same kernels
# with relaxed SIMD's fused multiply-add (wasm/training_kernels_relaxed.wasm, loaded where the
# runtime has relaxed SIMD), and over a shared memory (wasm/training_kernels_shared.wasm, for
# `npm run bench:threads`). Needs Debian's clang 16 and lld 16 (apt-get install clang-16 lld-16;
# the relaxed builtins need clang ≥ 16; $CLANG picks another). The results are committed, so
# installing or building the package needs neither; test/wasm_build.test.ts checks that the
# committed files match the source.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-wasm/training_kernels.wasm}
clang=${CLANG:-clang-16}
mkdir -p "$(dirname "$out")"
build() {
  "$clang" --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffreestanding \
    -fno-stack-protector -Wall -Werror \
    -Wl,--no-entry -Wl,--import-memory -Wl,--export-dynamic -Wl,--strip-debug \
    "$@" csrc/training_kernels.c
}
build -o "$out"
build -mrelaxed-simd -o "${out%.wasm}_relaxed.wasm"
build -matomics -Wl,--shared-memory -Wl,--max-memory=4294967296 -o "${out%.wasm}_shared.wasm"
# The kernels own no memory (see csrc/training_kernels.c): code that needs a stack, a local array
# the compiler could not keep in registers, would use __stack_pointer, whose region lld puts at the
# start of the backend's heap. Refuse such a build.
objdump=${OBJDUMP:-llvm-objdump-16}
command -v "$objdump" >/dev/null || { echo "$objdump not found (Debian's llvm-16)" >&2; exit 1; }
for f in "$out" "${out%.wasm}_relaxed.wasm" "${out%.wasm}_shared.wasm"; do
  if "$objdump" -d "$f" | grep -q 'global\.\(get\|set\)'; then
    echo "$f uses a stack (__stack_pointer): keep the kernels' locals in registers" >&2
    exit 1
  fi
done
