#!/usr/bin/env bash
# Rebuilds wasm/training_kernels.wasm from csrc/training_kernels.c, and the same kernels over a
# shared memory (wasm/training_kernels_shared.wasm, for `npm run bench:threads`). Needs Debian's clang and lld
# (apt-get install clang lld). The result is committed, so installing or building the package
# needs neither; test/wasm_build.test.ts checks that the committed file matches the source.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-wasm/training_kernels.wasm}
mkdir -p "$(dirname "$out")"
clang --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffreestanding \
  -fno-stack-protector -Wall -Werror \
  -Wl,--no-entry -Wl,--import-memory -Wl,--export-dynamic -Wl,--strip-debug \
  -o "$out" csrc/training_kernels.c
clang --target=wasm32 -O3 -msimd128 -mbulk-memory -matomics -nostdlib -ffreestanding \
  -fno-stack-protector -Wall -Werror \
  -Wl,--no-entry -Wl,--import-memory -Wl,--shared-memory -Wl,--max-memory=4294967296 \
  -Wl,--export-dynamic -Wl,--strip-debug \
  -o "${out%.wasm}_shared.wasm" csrc/training_kernels.c
