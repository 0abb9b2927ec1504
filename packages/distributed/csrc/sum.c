// The ring's reduce-scatter addition in wasm SIMD: own[i] = received[i] + own[i], the same operands
// in the same order as addInto in src/ring_schedule.ts, so either gives the same bytes. Built by
// scripts/build-wasm.sh into wasm/sum.wasm; memory is imported (src/simd_sum.ts owns it).
#include <wasm_simd128.h>

__attribute__((export_name("add_into")))
void add_into(float *restrict own, const float *restrict received, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int k = 0; k < 16; k += 4) {
      v128_t a = wasm_v128_load(received + i + k);
      v128_t b = wasm_v128_load(own + i + k);
      wasm_v128_store(own + i + k, wasm_f32x4_add(a, b));
    }
  }
  for (; i < n; i++) own[i] = received[i] + own[i];
}
