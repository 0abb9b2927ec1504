// THOR's factor blocks in wasm SIMD: the diagonal blocks of XᵀX·scale, X the im2col rows of an
// NHWC input, without materializing X. Built by scripts/build-wasm.sh into src/factors_wasm.ts;
// memory is imported (src/factor_kernel.ts owns it and lays out the buffers).
//
// For each block of `block` columns: a panel of up to PANEL_ROWS rows of the block's columns is
// gathered from the input (zeros where a tap falls in the padding), its columns padded with zeros
// to a multiple of 8; the upper triangle of panelᵀ·panel is accumulated in 4×8 tiles of float32
// (one panel at a time), each tile's panel sum added into float64; the lower triangle mirrors it.
#include <wasm_simd128.h>

#define PANEL_ROWS 256

/** Columns [c0, c0 + width) of im2col row (b, oy, ox), then zeros to wp. */
static void gather_row(float *restrict dst, const float *restrict x, int h, int w, int c, int kw,
                       int s, int pt, int pl, int b, int oy, int ox, int c0, int width, int wp) {
  int t = 0;
  while (t < width) {
    int col = c0 + t;
    int tap = col / c, q = col - tap * c;
    int i = tap / kw, j = tap - i * kw;
    int iy = oy * s + i - pt, ix = ox * s + j - pl;
    int run = c - q < width - t ? c - q : width - t;
    if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
      for (int k = 0; k < run; k++) dst[t + k] = 0.0f;
    } else {
      const float *src = x + (((long)(b * h + iy) * w + ix) * c + q);
      for (int k = 0; k < run; k++) dst[t + k] = src[k];
    }
    t += run;
  }
  for (; t < wp; t++) dst[t] = 0.0f;
}

/** sum[i·wp + j] += Σ_r panel[r, i]·panel[r, j] for i ≤ j (4×8 tiles; a little of i > j too). */
static void accumulate_upper(double *restrict sum, const float *restrict panel, int rows, int wp) {
  for (int i0 = 0; i0 < wp; i0 += 4) {
    for (int j0 = i0 & ~7; j0 < wp; j0 += 8) {
      v128_t a00 = wasm_f32x4_splat(0.0f), a01 = a00, a10 = a00, a11 = a00;
      v128_t a20 = a00, a21 = a00, a30 = a00, a31 = a00;
      const float *p = panel;
      for (int r = 0; r < rows; r++, p += wp) {
        v128_t b0 = wasm_v128_load(p + j0), b1 = wasm_v128_load(p + j0 + 4);
        v128_t x0 = wasm_v128_load32_splat(p + i0);
        v128_t x1 = wasm_v128_load32_splat(p + i0 + 1);
        v128_t x2 = wasm_v128_load32_splat(p + i0 + 2);
        v128_t x3 = wasm_v128_load32_splat(p + i0 + 3);
        a00 = wasm_f32x4_add(a00, wasm_f32x4_mul(x0, b0));
        a01 = wasm_f32x4_add(a01, wasm_f32x4_mul(x0, b1));
        a10 = wasm_f32x4_add(a10, wasm_f32x4_mul(x1, b0));
        a11 = wasm_f32x4_add(a11, wasm_f32x4_mul(x1, b1));
        a20 = wasm_f32x4_add(a20, wasm_f32x4_mul(x2, b0));
        a21 = wasm_f32x4_add(a21, wasm_f32x4_mul(x2, b1));
        a30 = wasm_f32x4_add(a30, wasm_f32x4_mul(x3, b0));
        a31 = wasm_f32x4_add(a31, wasm_f32x4_mul(x3, b1));
      }
      float t[4][8];
      wasm_v128_store(&t[0][0], a00);
      wasm_v128_store(&t[0][4], a01);
      wasm_v128_store(&t[1][0], a10);
      wasm_v128_store(&t[1][4], a11);
      wasm_v128_store(&t[2][0], a20);
      wasm_v128_store(&t[2][4], a21);
      wasm_v128_store(&t[3][0], a30);
      wasm_v128_store(&t[3][4], a31);
      for (int i = 0; i < 4; i++) {
        double *row = sum + (long)(i0 + i) * wp + j0;
        for (int j = 0; j < 8; j++) row[j] += (double)t[i][j];
      }
    }
  }
}

/**
 * out[kb, i, j] (f32, [nb, block, block]) = float32(Σ_r X[r, kb·block + i]·X[r, kb·block + j]) ·
 * scale for columns inside k = kh·kw·c, exactly 0 outside. X's rows are (b, oy, ox) over
 * [n, ho, wo]; its columns (i, j, q) over [kh, kw, c], HWIO order. `panel` holds PANEL_ROWS·wp
 * floats and `sum` wp·wp doubles, wp = min(block, k) rounded up to 8.
 */
__attribute__((export_name("factor_blocks")))
void factor_blocks(const float *restrict x, int n, int h, int w, int c, int kh, int kw, int s,
                   int pt, int pl, int ho, int wo, int block, float *restrict panel,
                   double *restrict sum, float *restrict out, float scale) {
  int k = kh * kw * c;
  int nb = (k + block - 1) / block;
  int m = n * ho * wo;
  for (int kb = 0; kb < nb; kb++) {
    int c0 = kb * block;
    int width = k - c0 < block ? k - c0 : block;
    int wp = (width + 7) & ~7;
    for (long i = 0; i < (long)wp * wp; i++) sum[i] = 0.0;
    int r = 0;
    while (r < m) {
      int rows = m - r < PANEL_ROWS ? m - r : PANEL_ROWS;
      for (int q = 0; q < rows; q++) {
        int row = r + q;
        int b = row / (ho * wo), rest = row - b * ho * wo;
        int oy = rest / wo, ox = rest - oy * wo;
        gather_row(panel + (long)q * wp, x, h, w, c, kw, s, pt, pl, b, oy, ox, c0, width, wp);
      }
      accumulate_upper(sum, panel, rows, wp);
      r += rows;
    }
    float *o = out + (long)kb * block * block;
    for (int i = 0; i < block; i++) {
      for (int j = 0; j < block; j++) {
        float v = 0.0f;
        if (i < width && j < width) {
          double d = i <= j ? sum[(long)i * wp + j] : sum[(long)j * wp + i];
          v = (float)d * scale;
        }
        o[i * block + j] = v;
      }
    }
  }
}
