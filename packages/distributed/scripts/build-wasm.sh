#!/usr/bin/env bash
# Rebuilds wasm/sum.wasm from csrc/sum.c. Needs Debian's clang and lld (apt-get install clang
# lld). The result is committed, so installing or building the package needs neither;
# test/simd_sum.test.ts checks that the committed file matches the source.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-wasm/sum.wasm}
mkdir -p "$(dirname "$out")"
clang --target=wasm32 -O3 -msimd128 -nostdlib -ffreestanding -fno-stack-protector -Wall -Werror \
  -Wl,--no-entry -Wl,--import-memory -Wl,-z,stack-size=0 -Wl,--strip-debug -o "$out" csrc/sum.c
