// Kernels for training convolutions on tfjs-backend-wasm: the GEMM that convolutions and their
// gradients run on, the data movement that lays their operands out for it, and the memory-bound
// layers between them (batch norm, ReLU, max pooling).
//
// Compiled to wasm32 with SIMD (scripts/build-wasm.sh) into a module that imports the tfjs wasm
// backend's own linear memory, so every pointer below is a tensor's offset in that heap. They use
// no static data and no stack: the memory belongs to the backend, and the module owns no region of
// it (the GEMM's scratch is passed in).
#include <wasm_simd128.h>

#define EXPORT __attribute__((visibility("default")))

typedef float f32;

// Copies a 4x4 block: dst[c][r] = src[r][c], rows `ss` floats apart in src, `ds` apart in dst.
static inline void transpose4x4(const f32* src, int ss, f32* dst, int ds) {
  v128_t r0 = wasm_v128_load(src);
  v128_t r1 = wasm_v128_load(src + ss);
  v128_t r2 = wasm_v128_load(src + 2 * ss);
  v128_t r3 = wasm_v128_load(src + 3 * ss);
  v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);
  v128_t t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
  v128_t t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
  v128_t t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
  wasm_v128_store(dst, wasm_i64x2_shuffle(t0, t2, 0, 2));
  wasm_v128_store(dst + ds, wasm_i64x2_shuffle(t0, t2, 1, 3));
  wasm_v128_store(dst + 2 * ds, wasm_i64x2_shuffle(t1, t3, 0, 2));
  wasm_v128_store(dst + 3 * ds, wasm_i64x2_shuffle(t1, t3, 1, 3));
}

// dst[c * ds + r] = src[r * ss + c] for r < rows, c < cols.
static void transpose_strided(const f32* src, int ss, f32* dst, int ds, int rows, int cols) {
  const int rows4 = rows & ~3, cols4 = cols & ~3;
  for (int r0 = 0; r0 < rows4; r0 += 32) {
    const int r1 = r0 + 32 < rows4 ? r0 + 32 : rows4;
    for (int c = 0; c < cols4; c += 4) {
      for (int r = r0; r < r1; r += 4) transpose4x4(src + r * ss + c, ss, dst + c * ds + r, ds);
    }
    for (int c = cols4; c < cols; c++) {
      for (int r = r0; r < r1; r++) dst[c * ds + r] = src[r * ss + c];
    }
  }
  for (int r = rows4; r < rows; r++) {
    for (int c = 0; c < cols; c++) dst[c * ds + r] = src[r * ss + c];
  }
}

// dst[b][c][r] = src[b][r][c] for `batch` row-major rows x cols matrices.
EXPORT void transpose_batched(const f32* src, f32* dst, int batch, int rows, int cols) {
  const int size = rows * cols;
  for (int b = 0; b < batch; b++) {
    transpose_strided(src + b * size, cols, dst + b * size, rows, rows, cols);
  }
}

// dst[i] = src[i] for i < n, for the short runs (a pixel's channels, a window's row) that data
// movement copies: inline, where memcpy would be a call out of the module on every run.
static inline void copy_floats(f32* dst, const f32* src, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(dst + i, wasm_v128_load(src + i));
  for (; i < n; i++) dst[i] = src[i];
}

// dst[i] += src[i] for i < n, inline (as copy_floats).
static inline void add_floats(f32* dst, const f32* src, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    wasm_v128_store(dst + i, wasm_f32x4_add(wasm_v128_load(dst + i), wasm_v128_load(src + i)));
  }
  for (; i < n; i++) dst[i] += src[i];
}

// dst[i] = 0 for i < n, inline (as copy_floats).
static inline void zero_floats(f32* dst, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(dst + i, wasm_f32x4_splat(0));
  for (; i < n; i++) dst[i] = 0;
}

// The transposed im2col of an NHWC tensor, for taps [t0, t1) of a kh x kw window and output rows
// [oh0, oh1) of each of the N images:
//   out[(t - t0) * C + c][(n * R + oh - oh0) * Wo + ow] = x[n][oh * sh + i - pt][ow * sw + j - pl][c]
// with t = i * kw + j, R = oh1 - oh0, and 0 where the window reads padding. A GEMM of `out` with
// the matching rows of the output gradient, viewed as [N * R * Wo, Co], is then the filter
// gradient for those taps and rows.
EXPORT void im2col_t(const f32* x, f32* out, int N, int H, int W, int C, int oh0, int oh1, int Wo,
                     int sh, int sw, int kw, int pt, int pl, int t0, int t1) {
  const int R = oh1 - oh0;
  const int M = N * R * Wo;
  for (int t = t0; t < t1; t++) {
    const int i = t / kw, j = t - (t / kw) * kw;
    f32* rows = out + (t - t0) * C * M;
    // Output columns ow in [ow0, ow1) read inside the image along the width.
    int ow0 = 0;
    while (ow0 < Wo && ow0 * sw + j - pl < 0) ow0++;
    int ow1 = Wo;
    while (ow1 > ow0 && (ow1 - 1) * sw + j - pl >= W) ow1--;
    for (int n = 0; n < N; n++) {
      for (int oh = oh0; oh < oh1; oh++) {
        const int ih = oh * sh + i - pt;
        f32* col = rows + (n * R + oh - oh0) * Wo;
        if (ih < 0 || ih >= H || ow0 >= ow1) {
          for (int c = 0; c < C; c++) __builtin_memset(col + c * M, 0, Wo * sizeof(f32));
          continue;
        }
        for (int c = 0; c < C; c++) {
          for (int ow = 0; ow < ow0; ow++) col[c * M + ow] = 0;
          for (int ow = ow1; ow < Wo; ow++) col[c * M + ow] = 0;
        }
        const f32* src = x + ((n * H + ih) * W + ow0 * sw + j - pl) * C;
        transpose_strided(src, sw * C, col + ow0, M, ow1 - ow0, C);
      }
    }
  }
}

// One phase of a strided convolution's input gradient, as a filter for a stride-1 convolution:
//   out[u][v][co][ci] = w[i0 + sh * (Th - 1 - u)][j0 + sw * (Tw - 1 - v)][ci][co]
// (taps flipped, channels swapped). With i0 = j0 = 0 and sh = sw = 1 it is the whole filter.
EXPORT void filter_phase(const f32* w, f32* out, int kw, int Ci, int Co, int i0, int Th, int j0,
                         int Tw, int sh, int sw) {
  for (int u = 0; u < Th; u++) {
    for (int v = 0; v < Tw; v++) {
      const int i = i0 + sh * (Th - 1 - u), j = j0 + sw * (Tw - 1 - v);
      transpose_strided(w + (i * kw + j) * Ci * Co, Co, out + (u * Tw + v) * Co * Ci, Ci, Ci, Co);
    }
  }
}

// dx[n][q * sh + rh][p * sw + rw][:] = phase[n][q][p][:] for the positions inside dx.
EXPORT void scatter_phase(const f32* phase, f32* dx, int N, int Qh, int Qw, int C, int H, int W,
                          int sh, int sw, int rh, int rw) {
  for (int n = 0; n < N; n++) {
    for (int q = 0; q < Qh; q++) {
      const int h = q * sh + rh;
      if (h >= H) break;
      for (int p = 0; p < Qw; p++) {
        const int w = p * sw + rw;
        if (w >= W) break;
        copy_floats(dx + ((n * H + h) * W + w) * C, phase + ((n * Qh + q) * Qw + p) * C, C);
      }
    }
  }
}

// out[n][h][w][:] = x[n][h + h0][w + w0][:] for h < Ho, w < Wo: a crop of an NHWC tensor.
EXPORT void crop_nhwc(const f32* x, f32* out, int N, int H, int W, int C, int h0, int w0, int Ho,
                      int Wo) {
  for (int n = 0; n < N; n++) {
    for (int h = 0; h < Ho; h++) {
      __builtin_memcpy(out + (n * Ho + h) * Wo * C, x + ((n * H + h + h0) * W + w0) * C,
                       Wo * C * sizeof(f32));
    }
  }
}

EXPORT void fill_zero(f32* p, int n) { __builtin_memset(p, 0, n * sizeof(f32)); }

// dst[i] += src[i] for i < n.
EXPORT void add_f32(f32* dst, const f32* src, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    wasm_v128_store(dst + i, wasm_f32x4_add(wasm_v128_load(dst + i), wasm_v128_load(src + i)));
  }
  for (; i < n; i++) dst[i] += src[i];
}

EXPORT void copy_f32(const f32* src, f32* dst, int n) { __builtin_memmove(dst, src, n * sizeof(f32)); }

// ---- Batch norm in training mode, over the rows of x viewed as [M, C] (channels last). ----
// Channel sums are taken BN_BLOCK rows at a time in float32 and added up in float64, so a sum over
// a million rows keeps float32 precision. `scratch` holds 9·C floats, 8-byte aligned.

#define BN_BLOCK 64
// Floats up to which a tensor is taken to stay in L2 (512 KB).
#define BN_SMALL (1 << 17)

static inline int min_int(int a, int b) { return a < b ? a : b; }

// tot[0..3] += the lanes of v.
static inline void add_lanes(double* tot, v128_t v) {
  tot[0] += wasm_f32x4_extract_lane(v, 0);
  tot[1] += wasm_f32x4_extract_lane(v, 1);
  tot[2] += wasm_f32x4_extract_lane(v, 2);
  tot[3] += wasm_f32x4_extract_lane(v, 3);
}

// tot[c] += Σ_r (x[r][c] − shift[c])^p over `rows` rows (C apart) for `lanes` channels (4 per
// vector, `lanes` a multiple of 4 up to 16), p = 1 (shift = 0) or 2. Inlined with constant
// `lanes` and `square`, so the partial sums stay in registers.
static inline void lane_sums(const f32* x, int rows, int C, const f32* shift, int square,
                             int lanes, double* tot) {
  const int nv = lanes / 4;
  v128_t s[4], acc[4];
  for (int v = 0; v < nv; v++) {
    s[v] = shift ? wasm_v128_load(shift + 4 * v) : wasm_f32x4_splat(0);
    acc[v] = wasm_f32x4_splat(0);
  }
  for (int r = 0; r < rows; r++, x += C) {
    for (int v = 0; v < nv; v++) {
      const v128_t d = wasm_f32x4_sub(wasm_v128_load(x + 4 * v), s[v]);
      acc[v] = wasm_f32x4_add(acc[v], square ? wasm_f32x4_mul(d, d) : d);
    }
  }
  for (int v = 0; v < nv; v++) add_lanes(tot + 4 * v, acc[v]);
}

// tot[c] = Σ_r (x[r][c] − shift[c])^p for p = 1 (shift = 0) or 2, BN_BLOCK rows at a time. A
// tensor of few channels, or small enough to stay in L2, is summed down the rows of 16 channels at
// a time (partial sums in registers, where a sum per row in memory would wait on its last store).
// A large one with more channels is summed row after row into `acc` (C floats), so its memory is
// read in order: going down 16 channels at a time there was 1.6x slower.
static inline void column_sums(const f32* x, int M, int C, const f32* shift, int square,
                               double* tot, f32* acc) {
  const int in_registers = C <= 16 || (long)M * C <= BN_SMALL;
  for (int c = 0; c < C; c++) tot[c] = 0;
  for (int r0 = 0; r0 < M; r0 += BN_BLOCK) {
    const int rows = min_int(M - r0, BN_BLOCK);
    const f32* block = x + (long)r0 * C;
    int c = 0;
    if (in_registers) {
      for (; c + 16 <= C; c += 16) {
        lane_sums(block + c, rows, C, shift ? shift + c : 0, square, 16, tot + c);
      }
      for (; c + 4 <= C; c += 4) {
        lane_sums(block + c, rows, C, shift ? shift + c : 0, square, 4, tot + c);
      }
      for (; c < C; c++) {
        f32 sum = 0;
        const f32 sh = shift ? shift[c] : 0;
        for (int r = 0; r < rows; r++) {
          const f32 d = block[(long)r * C + c] - sh;
          sum += square ? d * d : d;
        }
        tot[c] += sum;
      }
      continue;
    }
    __builtin_memset(acc, 0, C * sizeof(f32));
    for (int r = 0; r < rows; r++) {
      const f32* row = block + (long)r * C;
      for (c = 0; c + 4 <= C; c += 4) {
        v128_t d = wasm_v128_load(row + c);
        if (square) d = wasm_f32x4_sub(d, wasm_v128_load(shift + c)), d = wasm_f32x4_mul(d, d);
        wasm_v128_store(acc + c, wasm_f32x4_add(wasm_v128_load(acc + c), d));
      }
      for (; c < C; c++) acc[c] += square ? (row[c] - shift[c]) * (row[c] - shift[c]) : row[c];
    }
    for (c = 0; c < C; c++) tot[c] += acc[c];
  }
}

// out[r][c] = a[c] · in[r][c] + b[c], or max(that, 0) with `relu`.
static void scale_shift(const f32* in, f32* out, int M, int C, const f32* a, const f32* b,
                        int relu) {
  const v128_t zero = wasm_f32x4_splat(0);
  for (int r = 0; r < M; r++) {
    const f32* src = in + (long)r * C;
    f32* dst = out + (long)r * C;
    int c = 0;
    if (relu) {
      for (; c + 4 <= C; c += 4) {
        v128_t v = wasm_f32x4_mul(wasm_v128_load(src + c), wasm_v128_load(a + c));
        v = wasm_f32x4_add(v, wasm_v128_load(b + c));
        wasm_v128_store(dst + c, wasm_v128_and(v, wasm_f32x4_gt(v, zero)));
      }
      for (; c < C; c++) {
        const f32 v = src[c] * a[c] + b[c];
        dst[c] = v > 0 ? v : 0;
      }
    } else {
      for (; c + 4 <= C; c += 4) {
        v128_t v = wasm_f32x4_mul(wasm_v128_load(src + c), wasm_v128_load(a + c));
        wasm_v128_store(dst + c, wasm_f32x4_add(v, wasm_v128_load(b + c)));
      }
      for (; c < C; c++) dst[c] = src[c] * a[c] + b[c];
    }
  }
}

// mean and (biased) variance of each channel, and y = γ (x − mean) / √(var + eps) + β, followed
// by max(y, 0) when `relu` is set (batch norm and the ReLU after it in one pass over y).
EXPORT void bn_train(const f32* x, f32* y, int M, int C, const f32* gamma, const f32* beta, f32 eps,
                     f32* mean, f32* var, f32* scratch, int relu) {
  double* tot = (double*)scratch;
  f32* acc = scratch + 2 * C;
  f32* a = acc + C;
  f32* b = a + C;
  column_sums(x, M, C, 0, 0, tot, acc);
  for (int c = 0; c < C; c++) mean[c] = (f32)(tot[c] / M);
  column_sums(x, M, C, mean, 1, tot, acc);
  for (int c = 0; c < C; c++) {
    var[c] = (f32)(tot[c] / M);
    const f32 inv = 1.0f / __builtin_sqrtf(var[c] + eps);
    a[c] = gamma[c] * inv;
    b[c] = beta[c] - mean[c] * a[c];
  }
  scale_shift(x, y, M, C, a, b, relu);
}

// PyTorch's running statistics after a batch of M rows whose mean and (biased) variance bn_train
// gave: new = (1 − momentum) · running + momentum · batch, the batch's variance made unbiased
// (M / (M − 1)) first, as PyTorch keeps it.
EXPORT void bn_running(const f32* mean, const f32* var, const f32* run_mean, const f32* run_var,
                       int C, int M, f32 momentum, f32* new_mean, f32* new_var) {
  const f32 unbias = M > 1 ? (f32)((double)M / (M - 1)) : 1.0f;
  for (int c = 0; c < C; c++) {
    new_mean[c] = (1 - momentum) * run_mean[c] + momentum * mean[c];
    new_var[c] = (1 - momentum) * run_var[c] + momentum * (unbias * var[c]);
  }
}

// The gradients of bn_train given dy:
//   dβ = Σ dy,  dγ = Σ dy · x̂,  dx = γ/σ · (dy − dβ/M − x̂ · dγ/M),  x̂ = (x − mean)/σ.
// With `y` (the output of bn_train with relu), dy passes where y > 0 only: the ReLU's gradient,
// applied as dy is read.
EXPORT void bn_train_grad(const f32* dy, const f32* x, int M, int C, const f32* mean, const f32* var,
                          const f32* gamma, f32 eps, f32* dx, f32* dgamma, f32* dbeta,
                          f32* scratch, const f32* y) {
  const v128_t zero = wasm_f32x4_splat(0);
  double* sdy = (double*)scratch;
  double* sdyx = sdy + C;
  f32* acc0 = scratch + 4 * C;
  f32* acc1 = acc0 + C;
  f32* ka = acc1 + C;
  f32* kb = ka + C;
  f32* kd = kb + C;
  for (int c = 0; c < C; c++) sdy[c] = sdyx[c] = 0;
  for (int r0 = 0; r0 < M; r0 += BN_BLOCK) {
    const int r1 = min_int(M, r0 + BN_BLOCK);
    __builtin_memset(acc0, 0, 2 * C * sizeof(f32));
    for (int r = r0; r < r1; r++) {
      const f32* g = dy + (long)r * C;
      const f32* row = x + (long)r * C;
      const f32* out = y ? y + (long)r * C : 0;
      int c = 0;
      for (; c + 4 <= C; c += 4) {
        v128_t d = wasm_v128_load(g + c);
        if (out) d = wasm_v128_and(d, wasm_f32x4_gt(wasm_v128_load(out + c), zero));
        v128_t xc = wasm_f32x4_sub(wasm_v128_load(row + c), wasm_v128_load(mean + c));
        wasm_v128_store(acc0 + c, wasm_f32x4_add(wasm_v128_load(acc0 + c), d));
        wasm_v128_store(acc1 + c, wasm_f32x4_add(wasm_v128_load(acc1 + c), wasm_f32x4_mul(d, xc)));
      }
      for (; c < C; c++) {
        const f32 d = out && !(out[c] > 0) ? 0 : g[c];
        acc0[c] += d;
        acc1[c] += d * (row[c] - mean[c]);
      }
    }
    for (int c = 0; c < C; c++) {
      sdy[c] += acc0[c];
      sdyx[c] += acc1[c];
    }
  }
  for (int c = 0; c < C; c++) {
    const double inv = 1.0 / __builtin_sqrt((double)var[c] + eps);
    dbeta[c] = (f32)sdy[c];
    dgamma[c] = (f32)(sdyx[c] * inv);
    // dx = ka·dy + kb·x + kd, expanding the formula above around x.
    const double g = gamma[c] * inv;
    ka[c] = (f32)g;
    kb[c] = (f32)(-g * inv * inv * sdyx[c] / M);
    kd[c] = (f32)(-g * sdy[c] / M - kb[c] * (double)mean[c]);
  }
  for (int r = 0; r < M; r++) {
    const f32* g = dy + (long)r * C;
    const f32* row = x + (long)r * C;
    const f32* yr = y ? y + (long)r * C : 0;
    f32* out = dx + (long)r * C;
    int c = 0;
    for (; c + 4 <= C; c += 4) {
      v128_t d = wasm_v128_load(g + c);
      if (yr) d = wasm_v128_and(d, wasm_f32x4_gt(wasm_v128_load(yr + c), zero));
      v128_t v = wasm_f32x4_mul(d, wasm_v128_load(ka + c));
      v = wasm_f32x4_add(v, wasm_f32x4_mul(wasm_v128_load(row + c), wasm_v128_load(kb + c)));
      wasm_v128_store(out + c, wasm_f32x4_add(v, wasm_v128_load(kd + c)));
    }
    for (; c < C; c++) {
      const f32 d = yr && !(yr[c] > 0) ? 0 : g[c];
      out[c] = d * ka[c] + row[c] * kb[c] + kd[c];
    }
  }
}

// dx = dy where y = max(x, 0) was positive, else 0 (the ReLU gradient from its output).
EXPORT void relu_grad(const f32* dy, const f32* y, f32* dx, int n) {
  const v128_t zero = wasm_f32x4_splat(0);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t keep = wasm_f32x4_gt(wasm_v128_load(y + i), zero);
    wasm_v128_store(dx + i, wasm_v128_and(wasm_v128_load(dy + i), keep));
  }
  for (; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0;
}

// y = max(a + b, 0), the residual add and the ReLU after it in one pass (NaN stays NaN, as
// f32x4.max propagates it).
EXPORT void add_relu(const f32* a, const f32* b, f32* y, int n) {
  const v128_t zero = wasm_f32x4_splat(0);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t sum = wasm_f32x4_add(wasm_v128_load(a + i), wasm_v128_load(b + i));
    wasm_v128_store(y + i, wasm_f32x4_max(sum, zero));
  }
  for (; i < n; i++) {
    const f32 sum = a[i] + b[i];
    y[i] = sum > 0 || sum != sum ? sum : 0;
  }
}

// The max-pool gradient: each output's dy goes to the first maximum of its window (scanning rows,
// then columns, as tfjs and PyTorch do); windows that overlap add up. NHWC; `scratch` holds 2·C
// 32-bit values.
EXPORT void max_pool_grad(const f32* x, const f32* dy, f32* dx, int N, int H, int W, int C, int Ho,
                          int Wo, int kh, int kw, int sh, int sw, int pt, int pl, f32* scratch) {
  f32* best = scratch;
  int* at = (int*)(scratch + C);
  __builtin_memset(dx, 0, (long)N * H * W * C * sizeof(f32));
  for (int n = 0; n < N; n++) {
    const f32* xn = x + (long)n * H * W * C;
    f32* dxn = dx + (long)n * H * W * C;
    for (int oh = 0; oh < Ho; oh++) {
      const int h0 = oh * sh - pt;
      const int hs = h0 < 0 ? 0 : h0, he = min_int(h0 + kh, H);
      for (int ow = 0; ow < Wo; ow++) {
        const int w0 = ow * sw - pl;
        const int ws = w0 < 0 ? 0 : w0, we = min_int(w0 + kw, W);
        for (int c = 0; c < C; c++) {
          best[c] = -__builtin_inff();
          at[c] = -1;
        }
        for (int h = hs; h < he; h++) {
          for (int w = ws; w < we; w++) {
            const f32* row = xn + ((long)h * W + w) * C;
            const int pos = h * W + w;
            const v128_t vpos = wasm_i32x4_splat(pos);
            int c = 0;
            for (; c + 4 <= C; c += 4) {
              const v128_t v = wasm_v128_load(row + c);
              const v128_t b = wasm_v128_load(best + c);
              const v128_t take = wasm_f32x4_gt(v, b);
              wasm_v128_store(best + c, wasm_v128_bitselect(v, b, take));
              wasm_v128_store(at + c, wasm_v128_bitselect(vpos, wasm_v128_load(at + c), take));
            }
            for (; c < C; c++) {
              if (row[c] > best[c]) {
                best[c] = row[c];
                at[c] = pos;
              }
            }
          }
        }
        const f32* g = dy + (((long)n * Ho + oh) * Wo + ow) * C;
        for (int c = 0; c < C; c++) {
          if (at[c] >= 0) dxn[(long)at[c] * C + c] += g[c];
        }
      }
    }
  }
}

// The inverse of im2col, adding up: for each output position (n, oh, ow) and tap (i, j),
//   dx[n][oh·sh + i − pt][ow·sw + j − pl][:] += cols[(n·Ho + oh)·Wo + ow][(i·kw + j)·C : +C]
// skipping taps that fall in the padding. dx must be zeroed first.
EXPORT void col2im_add(const f32* cols, f32* dx, int N, int H, int W, int C, int Ho, int Wo, int kh,
                       int kw, int sh, int sw, int pt, int pl) {
  const int K = kh * kw * C;
  for (int n = 0; n < N; n++) {
    for (int oh = 0; oh < Ho; oh++) {
      for (int ow = 0; ow < Wo; ow++) {
        const f32* row = cols + (((long)n * Ho + oh) * Wo + ow) * K;
        const int w0 = ow * sw - pl;
        // A window row inside the input adds kw · C floats to consecutive pixels: one run.
        const int whole_row = w0 >= 0 && w0 + kw <= W;
        for (int i = 0; i < kh; i++) {
          const int ih = oh * sh + i - pt;
          if (ih < 0 || ih >= H) continue;
          if (whole_row) {
            add_floats(dx + (((long)n * H + ih) * W + w0) * C, row + i * kw * C, kw * C);
            continue;
          }
          for (int j = 0; j < kw; j++) {
            const int iw = ow * sw + j - pl;
            if (iw < 0 || iw >= W) continue;
            f32* d = dx + (((long)n * H + ih) * W + iw) * C;
            const f32* s = row + (i * kw + j) * C;
            for (int c = 0; c < C; c++) d[c] += s[c];
          }
        }
      }
    }
  }
}

// ---- GEMM ----
// C[m, n] (+)= A[m, k] · B[k, n] in 128-bit SIMD, blocked as in Goto and van de Geijn's "Anatomy
// of high-performance matrix multiplication": B a block of GEMM_KC × GEMM_NC at a time, packed
// into panels of GEMM_NR columns (zero-padded) that stay in L2; A read in place, GEMM_MR rows at a
// time along k (its k stride must be 1); a GEMM_MR × GEMM_NR tile of C in registers. Four rows
// keep the 8 accumulators, two B vectors, the A splat and the product within V8's 16 xmm
// registers without spilling; measured faster in V8 than 5 or 6 rows, and than a packed A.
#define GEMM_MR 4
#define GEMM_NR 8
#define GEMM_KC 256
#define GEMM_NC 512
// Floats of the edge tiles gemm_run needs: an edge tile's A rows and C.
#define GEMM_EDGE_FLOATS (GEMM_MR * GEMM_KC + GEMM_MR * GEMM_NR)

// Floats of scratch `gemm_f32` needs: the packed block of B, and an edge tile's A rows and C.
EXPORT int gemm_scratch_floats(void) { return GEMM_KC * GEMM_NC + GEMM_EDGE_FLOATS; }

// A GEMM_MR × GEMM_NR tile of C in registers: row i is r[i][0] and r[i][1]. The tile functions
// below take it by pointer and are inlined, so it never leaves the registers.
typedef struct {
  v128_t r[GEMM_MR][2];
} c_tile;

// The tile of C at c (rows ldc apart), or zeros unless load_c.
static inline void tile_load(c_tile* t, const f32* c, int ldc, int load_c) {
  if (load_c) {
    for (int i = 0; i < GEMM_MR; i++) {
      t->r[i][0] = wasm_v128_load(c + i * ldc), t->r[i][1] = wasm_v128_load(c + i * ldc + 4);
    }
  } else {
    for (int i = 0; i < GEMM_MR; i++) t->r[i][0] = t->r[i][1] = wasm_f32x4_splat(0.0f);
  }
}

// Row i of the tile += x · (b0, b1): one float of A's row i (splat in x) times a row of B. Built
// with relaxed SIMD (wasm/training_kernels_relaxed.wasm) it is a fused multiply-add where the CPU
// has one: half the instructions in the innermost loops, 1.2-1.3x the convolutions' GFLOP/s.
static inline void tile_madd(c_tile* t, int i, v128_t x, v128_t b0, v128_t b1) {
#ifdef __wasm_relaxed_simd__
  t->r[i][0] = __builtin_wasm_relaxed_madd_f32x4(x, b0, t->r[i][0]);
  t->r[i][1] = __builtin_wasm_relaxed_madd_f32x4(x, b1, t->r[i][1]);
#else
  t->r[i][0] = wasm_f32x4_add(t->r[i][0], wasm_f32x4_mul(x, b0));
  t->r[i][1] = wasm_f32x4_add(t->r[i][1], wasm_f32x4_mul(x, b1));
#endif
}

static inline void tile_store(const c_tile* t, f32* c, int ldc) {
  for (int i = 0; i < GEMM_MR; i++) {
    wasm_v128_store(c + i * ldc, t->r[i][0]), wasm_v128_store(c + i * ldc + 4, t->r[i][1]);
  }
}

// A tile at the edge of C, only mr × nr of it inside: copied (or zeros unless load_c) into the
// whole tile `edge` (GEMM_NR apart, zeros around it) for a tile function to compute in place...
static void edge_tile_in(f32* edge, const f32* c, int ldc, int mr, int nr, int load_c) {
  for (int i = 0; i < GEMM_MR; i++) {
    for (int j = 0; j < GEMM_NR; j++) {
      edge[i * GEMM_NR + j] = load_c && i < mr && j < nr ? c[i * ldc + j] : 0.0f;
    }
  }
}

// ...and its mr × nr part copied back to C.
static void edge_tile_out(const f32* edge, f32* c, int ldc, int mr, int nr) {
  for (int i = 0; i < mr; i++) {
    for (int j = 0; j < nr; j++) c[i * ldc + j] = edge[i * GEMM_NR + j];
  }
}

// The GEMM_MR × GEMM_NR tile c (rows ldc apart) (+)= a (GEMM_MR rows lda apart) · bp (kc × NR).
static inline void gemm_tile(const f32* a, int lda, const f32* bp, int kc, f32* c, int ldc,
                             int load_c) {
  c_tile acc;
  tile_load(&acc, c, ldc, load_c);
  for (int p = 0; p < kc; p++, bp += GEMM_NR) {
    const v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 4);
    for (int i = 0; i < GEMM_MR; i++) {
      tile_madd(&acc, i, wasm_v128_load32_splat(a + i * lda + p), b0, b1);
    }
  }
  tile_store(&acc, c, ldc);
}

// Packs B[0:kc, 0:nc] (element (p, j) at b[p * sbk + j * sbn]) into panels of GEMM_NR columns,
// each kc × GEMM_NR row-major, the last one zero-padded.
static void gemm_pack_b(const f32* b, int sbk, int sbn, int kc, int nc, f32* out) {
  for (int j0 = 0; j0 < nc; j0 += GEMM_NR, out += kc * GEMM_NR) {
    const int nr = min_int(GEMM_NR, nc - j0);
    const f32* col = b + j0 * sbn;
    if (sbn == 1 && nr == GEMM_NR) {
      for (int p = 0; p < kc; p++) {
        wasm_v128_store(out + p * GEMM_NR, wasm_v128_load(col + p * sbk));
        wasm_v128_store(out + p * GEMM_NR + 4, wasm_v128_load(col + p * sbk + 4));
      }
    } else {
      for (int j = 0; j < GEMM_NR; j++) {
        f32* o = out + j;
        if (j < nr) {
          for (int p = 0; p < kc; p++) o[p * GEMM_NR] = col[p * sbk + j * sbn];
        } else {
          for (int p = 0; p < kc; p++) o[p * GEMM_NR] = 0.0f;
        }
      }
    }
  }
}

// The GEMM over one packed block of B (kc × nc, panels of GEMM_NR): c[m, nc] (+)= a[m, kc] · bp.
static void gemm_block(const f32* a, int lda, const f32* bp, f32* c, int ldc, int m, int nc,
                       int kc, int load_c, f32* edge_a, f32* edge_c) {
  const int m_full = m - m % GEMM_MR;
  const int n_full = nc - nc % GEMM_NR;
  for (int i0 = 0; i0 < m; i0 += GEMM_MR) {
    const int mr = min_int(GEMM_MR, m - i0);
    const f32* a_rows = a + i0 * lda;
    int a_stride = lda;
    if (i0 >= m_full) {
      // The last rows, fewer than GEMM_MR: copied above zero rows so the tile reads no further.
      for (int i = 0; i < GEMM_MR; i++) {
        for (int p = 0; p < kc; p++) edge_a[i * kc + p] = i < mr ? a_rows[i * lda + p] : 0.0f;
      }
      a_rows = edge_a;
      a_stride = kc;
    }
    f32* c_rows = c + i0 * ldc;
    for (int jr = 0; jr < nc; jr += GEMM_NR) {
      const f32* panel = bp + jr * kc;
      if (mr == GEMM_MR && jr < n_full) {
        gemm_tile(a_rows, a_stride, panel, kc, c_rows + jr, ldc, load_c);
        continue;
      }
      const int nr = min_int(GEMM_NR, nc - jr);
      edge_tile_in(edge_c, c_rows + jr, ldc, mr, nr, load_c);
      gemm_tile(a_rows, a_stride, panel, kc, edge_c, GEMM_NR, 1);
      edge_tile_out(edge_c, c_rows + jr, ldc, mr, nr);
    }
  }
}

// Columns of a block of nc columns once packed: nc rounded up to whole panels.
static inline int gemm_padded(int nc) { return (nc + GEMM_NR - 1) / GEMM_NR * GEMM_NR; }

// The blocked loop the GEMMs share: with `packed` (B packed whole by gemm_pack) each block of B
// is read from it, else it is packed from b into `pack` (GEMM_KC × GEMM_NC floats) as it comes.
// `edge` holds GEMM_EDGE_FLOATS floats.
static void gemm_run(const f32* a, int lda, const f32* b, int sbk, int sbn, const f32* packed,
                     f32* c, int ldc, int m, int n, int k, int accumulate, f32* pack, f32* edge) {
  f32* edge_a = edge;
  f32* edge_c = edge_a + GEMM_MR * GEMM_KC;
  if (k == 0) {
    if (!accumulate) {
      for (int i = 0; i < m; i++) __builtin_memset(c + i * ldc, 0, n * sizeof(f32));
    }
    return;
  }
  for (int j0 = 0; j0 < n; j0 += GEMM_NC) {
    const int nc = min_int(GEMM_NC, n - j0);
    for (int p0 = 0; p0 < k; p0 += GEMM_KC) {
      const int kc = min_int(GEMM_KC, k - p0);
      const f32* bp = packed + j0 * k + p0 * gemm_padded(nc);
      if (packed == 0) {
        gemm_pack_b(b + p0 * sbk + j0 * sbn, sbk, sbn, kc, nc, pack);
        bp = pack;
      }
      gemm_block(a + p0, lda, bp, c + j0, ldc, m, nc, kc, accumulate || p0 > 0, edge_a, edge_c);
    }
  }
}

// C[m, n] = A · B, or C += A · B when `accumulate`. A's element (i, p) is a[i * lda + p]; B's
// (p, j) is b[p * sbk + j * sbn] (so a transposed B is sbk = 1, sbn = its row length); C is
// row-major with rows ldc apart. `scratch` holds gemm_scratch_floats() floats.
EXPORT void gemm_f32(const f32* a, int lda, const f32* b, int sbk, int sbn, f32* c, int ldc, int m,
                     int n, int k, int accumulate, f32* scratch) {
  gemm_run(a, lda, b, sbk, sbn, 0, c, ldc, m, n, k, accumulate, scratch, scratch + GEMM_KC * GEMM_NC);
}

// Floats of a whole B packed by gemm_pack: k × n rounded up to GEMM_NR columns.
EXPORT int gemm_packed_floats(int k, int n) { return k * gemm_padded(n); }

// Packs all of B (as in gemm_f32) once, for GEMMs that reuse it (gemm_f32_packed): the blocks of
// gemm_f32 one after another, block (j0, p0) at j0 · k + p0 · (its columns rounded up to GEMM_NR).
EXPORT void gemm_pack(const f32* b, int sbk, int sbn, int k, int n, f32* out) {
  for (int j0 = 0; j0 < n; j0 += GEMM_NC) {
    const int nc = min_int(GEMM_NC, n - j0);
    for (int p0 = 0; p0 < k; p0 += GEMM_KC) {
      gemm_pack_b(b + p0 * sbk + j0 * sbn, sbk, sbn, min_int(GEMM_KC, k - p0), nc,
                  out + j0 * k + p0 * gemm_padded(nc));
    }
  }
}

// gemm_f32 with B packed by gemm_pack; `scratch` holds gemm_scratch_floats() floats.
EXPORT void gemm_f32_packed(const f32* a, int lda, const f32* packed, f32* c, int ldc, int m, int n,
                            int k, int accumulate, f32* scratch) {
  gemm_run(a, lda, 0, 0, 0, packed, c, ldc, m, n, k, accumulate, 0, scratch + GEMM_KC * GEMM_NC);
}

// Rows [r0, r0 + rows) of the im2col matrix of an NHWC tensor x [N, H, W, C] for a kh × kw
// window with strides (sh, sw) and top/left padding (pt, pl):
//   out[r - r0][(i * kw + j) * C + c] = x[n][oh * sh + i - pt][ow * sw + j - pl][c]
// with r = (n * Ho + oh) * Wo + ow, and 0 where the window reads padding.
EXPORT void im2col(const f32* x, f32* out, int H, int W, int C, int Ho, int Wo, int kh, int kw,
                   int sh, int sw, int pt, int pl, int r0, int rows) {
  const int K = kh * kw * C;
  int ow = r0 % Wo, oh = (r0 / Wo) % Ho, n = r0 / (Wo * Ho);
  for (int r = 0; r < rows; r++, out += K) {
    const f32* image = x + n * H * W * C;
    const int w0 = ow * sw - pl;
    const int whole_row = w0 >= 0 && w0 + kw <= W;
    for (int i = 0; i < kh; i++) {
      f32* o = out + i * kw * C;
      const int ih = oh * sh + i - pt;
      if (ih < 0 || ih >= H) {
        zero_floats(o, kw * C);
      } else if (whole_row) {
        copy_floats(o, image + (ih * W + w0) * C, kw * C);
      } else {
        for (int j = 0; j < kw; j++) {
          const int iw = w0 + j;
          if (iw < 0 || iw >= W) zero_floats(o + j * C, C);
          else copy_floats(o + j * C, image + (ih * W + iw) * C, C);
        }
      }
    }
    if (++ow == Wo) {
      ow = 0;
      if (++oh == Ho) oh = 0, n++;
    }
  }
}

// ---- Convolution as an implicit GEMM: the tile reads the input itself, no im2col copy. ----

// The GEMM_MR × GEMM_NR tile c (+)= A · bp for GEMM rows [p0, p0 + kc) of depth, where A's row i
// is a window of the input: depth p = t · C + c (tap t, channel c) reads rp[t · GEMM_MR + i][c]
// (a pixel's C channels, or zeros where the window reads padding). bp: kc × GEMM_NR, packed.
static inline void conv_tile(const f32* const* rp, int p0, int kc, int C, const f32* bp, f32* c,
                             int ldc, int load_c) {
  c_tile acc;
  tile_load(&acc, c, ldc, load_c);
  const int end = p0 + kc;
  // The first tap and channel, then tap after tap from channel 0 (no division per tap).
  int t = p0 / C, ch = p0 - t * C;
  for (int p = p0; p < end; t++, ch = 0) {
    const int len = min_int(C - ch, end - p);
    const f32* a[GEMM_MR];
    for (int i = 0; i < GEMM_MR; i++) a[i] = rp[t * GEMM_MR + i] + ch;
    for (int q = 0; q < len; q++, bp += GEMM_NR) {
      const v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 4);
      for (int i = 0; i < GEMM_MR; i++) tile_madd(&acc, i, wasm_v128_load32_splat(a[i] + q), b0, b1);
    }
    p += len;
  }
  tile_store(&acc, c, ldc);
}

// Floats (or pointers) of scratch conv_gemm needs for `rows` output positions of a convolution
// with `taps` = kh · kw taps and C input channels: a zero pixel, an edge tile and the windows' table.
EXPORT int conv_gemm_scratch_floats(int rows, int taps, int C) {
  return C + GEMM_MR * GEMM_NR + (rows + GEMM_MR - 1) / GEMM_MR * GEMM_MR * taps;
}

// Output positions [r0, r0 + rows) of a 2-D convolution of the NHWC input x [N, H, W, C] with a
// kh × kw filter packed by gemm_pack (k = kh · kw · C rows, n = Co columns), strides (sh, sw) and
// top/left padding (pt, pl): y[r - r0][co] = Σ_(i, j, c) x[n][oh·sh + i − pt][ow·sw + j − pl][c] ·
// w[i][j][c][co] with r = (n · Ho + oh) · Wo + ow, as gemm_f32_packed would compute it on the
// im2col rows, but reading each window's pixels where they are. `scratch` holds
// conv_gemm_scratch_floats(rows, kh · kw, C) floats.
EXPORT void conv_gemm(const f32* x, const f32* packed, f32* y, int H, int W, int C, int Ho,
                      int Wo, int kh, int kw, int sh, int sw, int pt, int pl, int Co, int r0,
                      int rows, f32* scratch) {
  const int taps = kh * kw, K = taps * C;
  f32* zero = scratch;
  f32* edge_c = zero + C;
  const f32** table = (const f32**)(edge_c + GEMM_MR * GEMM_NR);
  for (int c = 0; c < C; c++) zero[c] = 0.0f;
  // table[(r / MR) · taps · MR + t · MR + r % MR]: where window r reads tap t's C channels.
  int ow = r0 % Wo, oh = (r0 / Wo) % Ho, n = r0 / (Wo * Ho);
  const int padded_rows = (rows + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
  for (int r = 0; r < padded_rows; r++) {
    const f32** entry = table + (r / GEMM_MR) * taps * GEMM_MR + r % GEMM_MR;
    for (int i = 0; i < kh; i++) {
      const int ih = oh * sh + i - pt;
      for (int j = 0; j < kw; j++) {
        const int iw = ow * sw + j - pl;
        const int inside = r < rows && ih >= 0 && ih < H && iw >= 0 && iw < W;
        entry[(i * kw + j) * GEMM_MR] = inside ? x + ((n * H + ih) * W + iw) * C : zero;
      }
    }
    if (++ow == Wo) {
      ow = 0;
      if (++oh == Ho) oh = 0, n++;
    }
  }
  for (int j0 = 0; j0 < Co; j0 += GEMM_NC) {
    const int nc = min_int(GEMM_NC, Co - j0);
    for (int p0 = 0; p0 < K; p0 += GEMM_KC) {
      const int kc = min_int(GEMM_KC, K - p0);
      const f32* block = packed + j0 * K + p0 * gemm_padded(nc);
      for (int i0 = 0; i0 < rows; i0 += GEMM_MR) {
        const int mr = min_int(GEMM_MR, rows - i0);
        const f32* const* rp = table + (i0 / GEMM_MR) * taps * GEMM_MR;
        f32* c_rows = y + i0 * Co + j0;
        for (int jr = 0; jr < nc; jr += GEMM_NR) {
          const f32* panel = block + jr * kc;
          const int nr = min_int(GEMM_NR, nc - jr);
          if (mr == GEMM_MR && nr == GEMM_NR) {
            conv_tile(rp, p0, kc, C, panel, c_rows + jr, Co, p0 > 0);
            continue;
          }
          edge_tile_in(edge_c, c_rows + jr, Co, mr, nr, p0 > 0);
          conv_tile(rp, p0, kc, C, panel, edge_c, GEMM_NR, 1);
          edge_tile_out(edge_c, c_rows + jr, Co, mr, nr);
        }
      }
    }
  }
}

// ---- The filter gradient as an implicit GEMM: windows read in place, no transposed im2col. ----

// A run of output positions that one tap reads inside the input: `len` positions from offset
// `q` of the block, the first reading `x_at` (a pixel's channel 0), the next ones `step` further.
typedef struct {
  int q, len;
  const f32* x_at;
} window_run;

// The GEMM_MR × GEMM_NR tile c += A · bp where A's row i is channel c0 + i of one tap's windows:
// for each run, `len` positions whose 4 channels are one vector at x_at + c0 (+ step each), times
// the rows of bp (the packed output gradient, GEMM_NR columns) at the run's offset.
static inline void filter_grad_tile(const window_run* runs, int nruns, int step, int c0,
                                    const f32* bp, f32* c, int ldc) {
  c_tile acc;
  tile_load(&acc, c, ldc, 1);
  for (int s = 0; s < nruns; s++) {
    const f32* a = runs[s].x_at + c0;
    const f32* b = bp + runs[s].q * GEMM_NR;
    for (int q = 0; q < runs[s].len; q++, a += step, b += GEMM_NR) {
      const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
      const v128_t v = wasm_v128_load(a);
      tile_madd(&acc, 0, wasm_i32x4_shuffle(v, v, 0, 0, 0, 0), b0, b1);
      tile_madd(&acc, 1, wasm_i32x4_shuffle(v, v, 1, 1, 1, 1), b0, b1);
      tile_madd(&acc, 2, wasm_i32x4_shuffle(v, v, 2, 2, 2, 2), b0, b1);
      tile_madd(&acc, 3, wasm_i32x4_shuffle(v, v, 3, 3, 3, 3), b0, b1);
    }
  }
  tile_store(&acc, c, ldc);
}

// Floats of scratch conv_filter_grad needs: a packed block of dy, an edge tile and the runs.
EXPORT int conv_filter_grad_scratch_floats(void) {
  return GEMM_KC * GEMM_NC + GEMM_MR * GEMM_NR + 3 * (GEMM_KC + 2);
}

// dw[i][j][c][co] += Σ_(n, oh, ow) x[n][oh·sh + i − pt][ow·sw + j − pl][c] · dy[n][oh][ow][co]
// over the P output positions of an NHWC input x
// [N, H, W, C] with C a multiple of 4 and a kh × kw filter; windows that read padding add
// nothing and are skipped. `scratch` holds conv_filter_grad_scratch_floats() floats.
EXPORT void conv_filter_grad(const f32* x, const f32* dy, f32* dw, int H, int W, int C, int Ho,
                             int Wo, int kh, int kw, int sh, int sw, int pt, int pl, int Co, int P,
                             f32* scratch) {
  f32* bp = scratch;
  f32* edge_c = bp + GEMM_KC * GEMM_NC;
  window_run* runs = (window_run*)(edge_c + GEMM_MR * GEMM_NR);
  const int step = sw * C;
  for (int j0 = 0; j0 < Co; j0 += GEMM_NC) {
    const int nc = min_int(GEMM_NC, Co - j0);
    for (int p0 = 0; p0 < P; p0 += GEMM_KC) {
      const int kc = min_int(GEMM_KC, P - p0);
      gemm_pack_b(dy + p0 * Co + j0, Co, 1, kc, nc, bp);
      for (int i = 0; i < kh; i++) {
        for (int j = 0; j < kw; j++) {
          // Output columns [ow0, ow1) whose window column j lies inside the input.
          int ow0 = 0;
          while (ow0 < Wo && ow0 * sw + j - pl < 0) ow0++;
          int ow1 = Wo;
          while (ow1 > ow0 && (ow1 - 1) * sw + j - pl >= W) ow1--;
          int nruns = 0;
          for (int q = 0; q < kc;) {
            const int pos = p0 + q;
            const int ow = pos % Wo, oh = (pos / Wo) % Ho, n = pos / (Wo * Ho);
            const int len = min_int(Wo - ow, kc - q);
            const int ih = oh * sh + i - pt;
            const int a = ow > ow0 ? ow : ow0, b = ow + len < ow1 ? ow + len : ow1;
            if (ih >= 0 && ih < H && a < b) {
              runs[nruns].q = q + a - ow;
              runs[nruns].len = b - a;
              runs[nruns].x_at = x + ((n * H + ih) * W + a * sw + j - pl) * C;
              nruns++;
            }
            q += len;
          }
          if (nruns == 0) continue;
          f32* rows = dw + (i * kw + j) * C * Co + j0;
          for (int c0 = 0; c0 < C; c0 += GEMM_MR) {
            for (int jr = 0; jr < nc; jr += GEMM_NR) {
              const f32* panel = bp + jr * kc;
              f32* c = rows + c0 * Co + jr;
              const int nr = min_int(GEMM_NR, nc - jr);
              if (nr == GEMM_NR) {
                filter_grad_tile(runs, nruns, step, c0, panel, c, Co);
                continue;
              }
              edge_tile_in(edge_c, c, Co, GEMM_MR, nr, 1);
              filter_grad_tile(runs, nruns, step, c0, panel, edge_c, GEMM_NR);
              edge_tile_out(edge_c, c, Co, GEMM_MR, nr);
            }
          }
        }
      }
    }
  }
}

// ---- Winograd F(4×4, 3×3): a 3×3 stride-1 convolution in 36 GEMMs, 4× fewer multiplies. ----
// Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). A 4×4 tile of
// outputs is Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A, d the 6×6 input patch under it and g the 3×3 filter;
// summed over input channels, each element ξ of the 6×6 product is a GEMM of the tiles'
// transformed patches (tiles × C) by the transformed filter (C × Co). The matrices, for the
// points 0, ±1, ±2 and ∞:
//   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1],
//   G = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1],
//   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1].
// Tile (n, ty, tx), numbered (n · Th + ty) · Tw + tx with Th = ⌈Ho / 4⌉ and Tw = ⌈Wo / 4⌉, holds
// outputs [4ty, 4ty + 4) × [4tx, 4tx + 4) (those past Ho or Wo are dropped) and reads input rows
// 4ty − pt + [0, 6), columns 4tx − pl + [0, 6) (zeros outside). Channels go 4 at a time: C and Co
// multiples of 4. The 2-D transforms go a line at a time through a small staging block in the
// scratch (36 vectors would not stay in registers).
//
// The filter gradient: the forward is linear in U = G g Gᵀ, so the loss's gradient with respect
// to U is V ⊙ (A dY Aᵀ) summed over tiles, dY a tile's 4×4 output gradient (zeros past Ho or Wo),
// and the filter's is Gᵀ dU G. Element ξ of dU is a GEMM over tiles:
//   dU[ξ][co][c] = Σ_t Ŷ[ξ][co][t] · V[ξ][t][c],   Ŷ = A dY Aᵀ.
// There V is written straight into the GEMM's packed panels of GEMM_NR channels, and Ŷ
// transposed (output channels × tiles) as the GEMM's A.

// A tile's position (image n, tile row ty, tile column tx), stepped through tiles in order.
typedef struct {
  int n, ty, tx;
} tile_pos;

static inline tile_pos tile_at(int t, int Th, int Tw) {
  return (tile_pos){t / (Tw * Th), (t / Tw) % Th, t % Tw};
}

static inline void tile_next(tile_pos* q, int Th, int Tw) {
  if (++q->tx == Tw) {
    q->tx = 0;
    if (++q->ty == Th) q->ty = 0, q->n++;
  }
}

// The 6×6 input patch under tile q: where its pixel (0, 0) starts, its pixels C floats apart and
// its rows *rs apart. In place when the patch lies inside x; else gathered, zeros where it reads
// padding, into `patch` (36 · C floats).
static inline const f32* winograd_patch(const f32* x, f32* patch, tile_pos q, int H, int W, int C,
                                        int pt, int pl, int* rs) {
  const int ih0 = 4 * q.ty - pt, iw0 = 4 * q.tx - pl;
  const f32* image = x + q.n * H * W * C;
  if (ih0 >= 0 && ih0 + 6 <= H && iw0 >= 0 && iw0 + 6 <= W) {
    *rs = W * C;
    return image + (ih0 * W + iw0) * C;
  }
  for (int r = 0; r < 6; r++) {
    const int ih = ih0 + r;
    for (int s = 0; s < 6; s++) {
      const int iw = iw0 + s;
      f32* dst = patch + (r * 6 + s) * C;
      if (ih >= 0 && ih < H && iw >= 0 && iw < W) copy_floats(dst, image + (ih * W + iw) * C, C);
      else zero_floats(dst, C);
    }
  }
  *rs = 6 * C;
  return patch;
}

// Floats from one of the 36 transformed matrices of `tiles` rows × `cols` to the next: padded by
// 32 floats (128 bytes) so that the 36 rows a transform reads or writes at once are not a
// multiple of 4 KiB apart, in one L1 set (with 256 tiles of 16 channels they would be 16 KiB
// apart, which ran 1.7× slower).
static inline int winograd_stride(int tiles, int cols) { return tiles * cols + 32; }

// Floats from one ξ of V in panels to the next: channels rounded up to whole GEMM panels.
static inline int winograd_panel_floats(int tiles, int C) { return tiles * gemm_padded(C) + 32; }
// Floats from one ξ of the transposed Ŷ to the next (rows of `tiles` rounded up to 4).
static inline int winograd_dy_stride(int tiles, int Co) { return Co * ((tiles + 3) & ~3) + 32; }

// Six vectors: a line of a 6×6 transform (the 4 or 3 of a shorter one first, then zeros).
typedef struct {
  v128_t v[6];
} v128x6;

static inline v128_t splat(f32 x) { return wasm_f32x4_splat(x); }

// Bᵀ · (d0, ..., d5).
static inline v128x6 winograd_bt(v128_t d0, v128_t d1, v128_t d2, v128_t d3, v128_t d4, v128_t d5) {
  const v128_t a = wasm_f32x4_sub(d4, wasm_f32x4_mul(splat(4.0f), d2));
  const v128_t b = wasm_f32x4_sub(d3, wasm_f32x4_mul(splat(4.0f), d1));
  const v128_t c = wasm_f32x4_sub(d4, d2);
  const v128_t e = wasm_f32x4_mul(splat(2.0f), wasm_f32x4_sub(d3, d1));
  v128x6 r;
  r.v[0] = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(splat(4.0f), d0),
                                         wasm_f32x4_mul(splat(5.0f), d2)), d4);
  r.v[1] = wasm_f32x4_add(a, b);
  r.v[2] = wasm_f32x4_sub(a, b);
  r.v[3] = wasm_f32x4_add(c, e);
  r.v[4] = wasm_f32x4_sub(c, e);
  r.v[5] = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(splat(4.0f), d1),
                                         wasm_f32x4_mul(splat(5.0f), d3)), d5);
  return r;
}

// G · (g0, g1, g2).
static inline v128x6 winograd_g(v128_t g0, v128_t g1, v128_t g2) {
  const v128_t outer = wasm_f32x4_add(g0, g2);
  const v128_t g0_24 = wasm_f32x4_mul(splat(1.0f / 24), g0);
  const v128_t g1_12 = wasm_f32x4_mul(splat(1.0f / 12), g1);
  const v128_t g2_6 = wasm_f32x4_mul(splat(1.0f / 6), g2);
  v128x6 r;
  r.v[0] = wasm_f32x4_mul(splat(0.25f), g0);
  r.v[1] = wasm_f32x4_mul(splat(-1.0f / 6), wasm_f32x4_add(outer, g1));
  r.v[2] = wasm_f32x4_mul(splat(-1.0f / 6), wasm_f32x4_sub(outer, g1));
  r.v[3] = wasm_f32x4_add(wasm_f32x4_add(g0_24, g1_12), g2_6);
  r.v[4] = wasm_f32x4_add(wasm_f32x4_sub(g0_24, g1_12), g2_6);
  r.v[5] = g2;
  return r;
}

// Aᵀ · (m0, ..., m5): 4 values in o.v[0..3].
static inline v128x6 winograd_at(v128_t m0, v128_t m1, v128_t m2, v128_t m3, v128_t m4, v128_t m5) {
  const v128_t p = wasm_f32x4_add(m1, m2), q = wasm_f32x4_sub(m1, m2);
  const v128_t r = wasm_f32x4_add(m3, m4), s = wasm_f32x4_sub(m3, m4);
  v128x6 o;
  o.v[0] = wasm_f32x4_add(wasm_f32x4_add(m0, p), r);
  o.v[1] = wasm_f32x4_add(q, wasm_f32x4_mul(splat(2.0f), s));
  o.v[2] = wasm_f32x4_add(p, wasm_f32x4_mul(splat(4.0f), r));
  o.v[3] = wasm_f32x4_add(wasm_f32x4_add(q, wasm_f32x4_mul(splat(8.0f), s)), m5);
  o.v[4] = o.v[5] = splat(0.0f);
  return o;
}

// A · (e0, e1, e2, e3), A = (Aᵀ)ᵀ.
static inline v128x6 winograd_a(v128_t e0, v128_t e1, v128_t e2, v128_t e3) {
  const v128_t p = wasm_f32x4_add(e0, e2), q = wasm_f32x4_add(e1, e3);
  const v128_t r = wasm_f32x4_add(e0, wasm_f32x4_mul(splat(4.0f), e2));
  const v128_t s = wasm_f32x4_add(wasm_f32x4_mul(splat(2.0f), e1), wasm_f32x4_mul(splat(8.0f), e3));
  v128x6 o;
  o.v[0] = e0;
  o.v[1] = wasm_f32x4_add(p, q);
  o.v[2] = wasm_f32x4_sub(p, q);
  o.v[3] = wasm_f32x4_add(r, s);
  o.v[4] = wasm_f32x4_sub(r, s);
  o.v[5] = e3;
  return o;
}

// Gᵀ · (u0, ..., u5): 3 values in o.v[0..2].
static inline v128x6 winograd_gt(v128_t u0, v128_t u1, v128_t u2, v128_t u3, v128_t u4, v128_t u5) {
  const v128_t s12 = wasm_f32x4_add(u1, u2), d12 = wasm_f32x4_sub(u2, u1);
  const v128_t s34 = wasm_f32x4_add(u3, u4), d34 = wasm_f32x4_sub(u3, u4);
  v128x6 o;
  o.v[0] = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(splat(0.25f), u0),
                                         wasm_f32x4_mul(splat(1.0f / 6), s12)),
                          wasm_f32x4_mul(splat(1.0f / 24), s34));
  o.v[1] = wasm_f32x4_add(wasm_f32x4_mul(splat(1.0f / 6), d12), wasm_f32x4_mul(splat(1.0f / 12), d34));
  o.v[2] = wasm_f32x4_add(wasm_f32x4_mul(splat(1.0f / 6), wasm_f32x4_sub(s34, s12)), u5);
  o.v[3] = o.v[4] = o.v[5] = splat(0.0f);
  return o;
}

// Floats of a filter transformed and packed by winograd_filter: 36 packed C × Co matrices.
EXPORT int winograd_filter_floats(int C, int Co) { return 36 * gemm_packed_floats(C, Co); }

// The HWIO filter w [3][3][C][Co] transformed, u[ξ][c][co] = (G g Gᵀ)[ξ] (36 · C · Co floats),
// and each u[ξ] packed by gemm_pack into `packed` (winograd_filter_floats(C, Co)).
EXPORT void winograd_filter(const f32* w, f32* u, f32* packed, int C, int Co) {
  const int n = C * Co;
  for (int e = 0; e < n; e += 4) {
#define W(i, j) wasm_v128_load(w + ((i) * 3 + (j)) * n + e)
    const v128x6 t0 = winograd_g(W(0, 0), W(1, 0), W(2, 0));
    const v128x6 t1 = winograd_g(W(0, 1), W(1, 1), W(2, 1));
    const v128x6 t2 = winograd_g(W(0, 2), W(1, 2), W(2, 2));
#undef W
    for (int r = 0; r < 6; r++) {
      const v128x6 row = winograd_g(t0.v[r], t1.v[r], t2.v[r]);
      for (int j = 0; j < 6; j++) wasm_v128_store(u + (r * 6 + j) * n + e, row.v[j]);
    }
  }
  const int kp = gemm_packed_floats(C, Co);
  for (int xi = 0; xi < 36; xi++) gemm_pack(u + xi * n, Co, 1, C, Co, packed + xi * kp);
}

// Bᵀ d B for channels [c, c + 4) of the 6×6 patch d (pixels C floats apart, rows rs apart):
// element ξ to v[ξ · vs]; `stage` holds 36 vectors.
static inline void winograd_input_tile(const f32* d, int rs, int C, int c, f32* v, int vs, f32* stage) {
  for (int s = 0; s < 6; s++) {
#define D(r) wasm_v128_load(d + (r) * rs + s * C + c)
    const v128x6 col = winograd_bt(D(0), D(1), D(2), D(3), D(4), D(5));
#undef D
    for (int r = 0; r < 6; r++) wasm_v128_store(stage + (r * 6 + s) * 4, col.v[r]);
  }
  for (int r = 0; r < 6; r++) {
#define S(j) wasm_v128_load(stage + (r * 6 + (j)) * 4)
    const v128x6 row = winograd_bt(S(0), S(1), S(2), S(3), S(4), S(5));
#undef S
    for (int j = 0; j < 6; j++) wasm_v128_store(v + (r * 6 + j) * vs, row.v[j]);
  }
}

// Floats of scratch winograd_conv needs for `tiles` tiles: the transformed patches and products,
// a gathered patch, a staging block and the GEMM's edge tiles.
EXPORT int winograd_scratch_floats(int tiles, int C, int Co) {
  return 36 * (winograd_stride(tiles, C) + winograd_stride(tiles, Co)) + 36 * C + 144 +
         GEMM_EDGE_FLOATS;
}

// Tiles [t0, t0 + tiles) of the 3×3 stride-1 convolution of the NHWC input x [N, H, W, C] with a
// filter transformed by winograd_filter, padding (pt, pl) above and left, into y [N, Ho, Wo, Co]
// (the whole output). `scratch` holds winograd_scratch_floats(tiles, C, Co) floats.
EXPORT void winograd_conv(const f32* x, const f32* packed, f32* y, int H, int W, int C, int Ho,
                           int Wo, int pt, int pl, int Co, int t0, int tiles, f32* scratch) {
  const int Th = (Ho + 3) / 4, Tw = (Wo + 3) / 4;
  const int vs = winograd_stride(tiles, C), ms = winograd_stride(tiles, Co);
  f32* v = scratch;
  f32* m = v + 36 * vs;
  f32* patch = m + 36 * ms;
  f32* stage = patch + 36 * C;
  f32* edge = stage + 144;
  tile_pos q = tile_at(t0, Th, Tw);
  for (int i = 0; i < tiles; i++, tile_next(&q, Th, Tw)) {
    int rs;
    const f32* d = winograd_patch(x, patch, q, H, W, C, pt, pl, &rs);
    for (int c = 0; c < C; c += 4) winograd_input_tile(d, rs, C, c, v + i * C + c, vs, stage);
  }
  const int kp = gemm_packed_floats(C, Co);
  for (int xi = 0; xi < 36; xi++) {
    gemm_run(v + xi * vs, C, 0, 0, 0, packed + xi * kp, m + xi * ms, Co, tiles, Co, C, 0, 0, edge);
  }
  q = tile_at(t0, Th, Tw);
  for (int i = 0; i < tiles; i++, tile_next(&q, Th, Tw)) {
    const int rows = min_int(4, Ho - 4 * q.ty), cols = min_int(4, Wo - 4 * q.tx);
    f32* out = y + ((q.n * Ho + 4 * q.ty) * Wo + 4 * q.tx) * Co;
    const f32* mi = m + i * Co;
    for (int co = 0; co < Co; co += 4) {
      for (int s = 0; s < 6; s++) {
#define M(r) wasm_v128_load(mi + ((r) * 6 + s) * ms + co)
        const v128x6 col = winograd_at(M(0), M(1), M(2), M(3), M(4), M(5));
#undef M
        for (int r = 0; r < 4; r++) wasm_v128_store(stage + (r * 6 + s) * 4, col.v[r]);
      }
      for (int r = 0; r < rows; r++) {
#define S(j) wasm_v128_load(stage + (r * 6 + (j)) * 4)
        const v128x6 row = winograd_at(S(0), S(1), S(2), S(3), S(4), S(5));
#undef S
        f32* o = out + r * Wo * Co + co;
        if (cols == 4) {
          wasm_v128_store(o, row.v[0]), wasm_v128_store(o + Co, row.v[1]);
          wasm_v128_store(o + 2 * Co, row.v[2]), wasm_v128_store(o + 3 * Co, row.v[3]);
        } else {
          for (int j = 0; j < cols; j++) wasm_v128_store(o + j * Co, row.v[j]);
        }
      }
    }
  }
}

// Floats of scratch winograd_filter_grad needs for `tiles` (at most GEMM_KC) tiles: V packed, Ŷ
// transposed, a gathered patch, staging blocks and the GEMM's edge tiles.
EXPORT int winograd_grad_scratch_floats(int tiles, int C, int Co) {
  return 36 * (winograd_panel_floats(tiles, C) + winograd_dy_stride(tiles, Co)) + 36 * C + 144 +
         576 + GEMM_EDGE_FLOATS;
}

// du [36][Co][C] += the gradient with respect to the transformed filter over tiles
// [t0, t0 + tiles) (at most GEMM_KC) of the 3×3 stride-1 convolution of x [N, H, W, C] with
// output gradient dy [N, Ho, Wo, Co] (padding pt, pl); winograd_filter_grad_out turns it into
// the filter's. `scratch` holds winograd_grad_scratch_floats(tiles, C, Co) floats.
EXPORT void winograd_filter_grad(const f32* x, const f32* dy, f32* du, int H, int W, int C,
                                  int Ho, int Wo, int pt, int pl, int Co, int t0, int tiles,
                                  f32* scratch) {
  const int Th = (Ho + 3) / 4, Tw = (Wo + 3) / 4;
  const int vs = winograd_panel_floats(tiles, C), ys = winograd_dy_stride(tiles, Co);
  const int T4 = (tiles + 3) & ~3;
  f32* v = scratch;
  f32* yt = v + 36 * vs;
  f32* patch = yt + 36 * ys;
  f32* stage = patch + 36 * C;
  f32* quad = stage + 144;
  f32* edge = quad + 576;
  tile_pos q = tile_at(t0, Th, Tw);
  for (int i = 0; i < tiles; i++, tile_next(&q, Th, Tw)) {
    int rs;
    const f32* d = winograd_patch(x, patch, q, H, W, C, pt, pl, &rs);
    for (int c = 0; c < C; c += 4) {
      f32* at = v + (c / GEMM_NR) * tiles * GEMM_NR + i * GEMM_NR + c % GEMM_NR;
      winograd_input_tile(d, rs, C, c, at, vs, stage);
    }
    if (C % GEMM_NR != 0) {
      f32* pad = v + (C / GEMM_NR) * tiles * GEMM_NR + i * GEMM_NR + C % GEMM_NR;
      for (int xi = 0; xi < 36; xi++) zero_floats(pad + xi * vs, GEMM_NR - C % GEMM_NR);
    }
  }
  // Ŷ = A dY Aᵀ transposed, four tiles at a time: yt[ξ · ys + co · T4 + i].
  q = tile_at(t0, Th, Tw);
  for (int i0 = 0; i0 < T4; i0 += 4) {
    tile_pos four[4];
    for (int k = 0; k < 4; k++) four[k] = q, tile_next(&q, Th, Tw);
    for (int co = 0; co < Co; co += 4) {
      for (int k = 0; k < 4; k++) {
        const tile_pos u = four[k];
        const int real = i0 + k < tiles;
        const int rows = real ? min_int(4, Ho - 4 * u.ty) : 0;
        const int cols = min_int(4, Wo - 4 * u.tx);
        const f32* at = dy + ((u.n * Ho + 4 * u.ty) * Wo + 4 * u.tx) * Co + co;
        const v128_t z = splat(0.0f);
        for (int b = 0; b < 4; b++) {
#define E(a) ((a) < rows && b < cols ? wasm_v128_load(at + ((a) * Wo + b) * Co) : z)
          const v128x6 col = winograd_a(E(0), E(1), E(2), E(3));
#undef E
          for (int j = 0; j < 6; j++) wasm_v128_store(stage + (j * 4 + b) * 4, col.v[j]);
        }
        for (int j = 0; j < 6; j++) {
#define S(b) wasm_v128_load(stage + (j * 4 + (b)) * 4)
          const v128x6 row = winograd_a(S(0), S(1), S(2), S(3));
#undef S
          for (int l = 0; l < 6; l++) wasm_v128_store(quad + ((j * 6 + l) * 4 + k) * 4, row.v[l]);
        }
      }
      for (int xi = 0; xi < 36; xi++) {
        transpose4x4(quad + xi * 16, 4, yt + xi * ys + co * T4 + i0, T4);
      }
    }
  }
  f32* edge_a = edge;
  f32* edge_c = edge_a + GEMM_MR * GEMM_KC;
  for (int xi = 0; xi < 36; xi++) {
    for (int j0 = 0; j0 < C; j0 += GEMM_NC) {
      gemm_block(yt + xi * ys, T4, v + xi * vs + j0 * tiles, du + xi * Co * C + j0, C, Co,
                 min_int(GEMM_NC, C - j0), tiles, 1, edge_a, edge_c);
    }
  }
}

// The filter gradient dw [3][3][C][Co] = Gᵀ dU G from du [36][Co][C] (winograd_filter_grad's
// sums); t holds 9 · Co · C floats.
EXPORT void winograd_filter_grad_out(const f32* du, f32* t, f32* dw, int C, int Co) {
  const int n = C * Co;
  for (int e = 0; e < n; e += 4) {
    v128x6 cols[6];
    for (int s = 0; s < 6; s++) {
#define U(r) wasm_v128_load(du + ((r) * 6 + s) * n + e)
      cols[s] = winograd_gt(U(0), U(1), U(2), U(3), U(4), U(5));
#undef U
    }
    for (int i = 0; i < 3; i++) {
      const v128x6 row =
          winograd_gt(cols[0].v[i], cols[1].v[i], cols[2].v[i], cols[3].v[i], cols[4].v[i], cols[5].v[i]);
      for (int j = 0; j < 3; j++) wasm_v128_store(t + (i * 3 + j) * n + e, row.v[j]);
    }
  }
  transpose_batched(t, dw, 9, Co, C);
}
