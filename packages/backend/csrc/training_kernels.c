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
        for (int i = 0; i < kh; i++) {
          const int ih = oh * sh + i - pt;
          if (ih < 0 || ih >= H) continue;
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

// ---- Winograd F(2×2, 3×3): a 3×3 stride-1 convolution as 16 GEMMs with 2.25× fewer flops. ----
// Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). A 2×2 tile of
// outputs is Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A, d the 4×4 input patch under it and g the 3×3 filter;
// summed over input channels, each element ξ of the 4×4 product is a GEMM of the tiles'
// transformed patches (tiles × C) by the transformed filter (C × Co). Here
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//   Aᵀ = [1 1 1 0; 0 1 −1 −1].
// Tile (n, ty, tx), numbered (n · Th + ty) · Tw + tx with Th = ⌈Ho / 2⌉ and Tw = ⌈Wo / 2⌉, holds
// outputs [2ty, 2ty + 2) × [2tx, 2tx + 2) and reads input rows 2ty − pt + [0, 4), columns
// 2tx − pl + [0, 4) (zeros outside). Channels are taken 4 at a time: C and Co multiples of 4.

typedef struct {
  v128_t a, b, c, d;
} v128x4;

typedef struct {
  v128_t a, b;
} v128x2;

// Bᵀ · (d0, d1, d2, d3).
static inline v128x4 winograd_bt(v128_t d0, v128_t d1, v128_t d2, v128_t d3) {
  return (v128x4){wasm_f32x4_sub(d0, d2), wasm_f32x4_add(d1, d2), wasm_f32x4_sub(d2, d1),
                  wasm_f32x4_sub(d1, d3)};
}

// G · (g0, g1, g2).
static inline v128x4 winograd_g(v128_t g0, v128_t g1, v128_t g2) {
  const v128_t half = wasm_f32x4_splat(0.5f);
  const v128_t outer = wasm_f32x4_add(g0, g2);
  return (v128x4){g0, wasm_f32x4_mul(wasm_f32x4_add(outer, g1), half),
                  wasm_f32x4_mul(wasm_f32x4_sub(outer, g1), half), g2};
}

// Aᵀ · (m0, m1, m2, m3).
static inline v128x2 winograd_at(v128_t m0, v128_t m1, v128_t m2, v128_t m3) {
  return (v128x2){wasm_f32x4_add(wasm_f32x4_add(m0, m1), m2),
                  wasm_f32x4_sub(wasm_f32x4_sub(m1, m2), m3)};
}

// Floats of a filter transformed and packed by winograd_filter: 16 packed C × Co matrices.
EXPORT int winograd_filter_floats(int C, int Co) { return 16 * gemm_packed_floats(C, Co); }

// The HWIO filter w [3][3][C][Co] transformed, u[ξ][c][co] = (G g Gᵀ)[ξ] (u holds 16 · C · Co
// floats), and each u[ξ] packed by gemm_pack into `packed` (winograd_filter_floats(C, Co)).
EXPORT void winograd_filter(const f32* w, f32* u, f32* packed, int C, int Co) {
  const int n = C * Co;
  for (int e = 0; e < n; e += 4) {
#define W(i, j) wasm_v128_load(w + ((i) * 3 + (j)) * n + e)
    const v128x4 t0 = winograd_g(W(0, 0), W(1, 0), W(2, 0));
    const v128x4 t1 = winograd_g(W(0, 1), W(1, 1), W(2, 1));
    const v128x4 t2 = winograd_g(W(0, 2), W(1, 2), W(2, 2));
#undef W
    const v128x4 r0 = winograd_g(t0.a, t1.a, t2.a), r1 = winograd_g(t0.b, t1.b, t2.b);
    const v128x4 r2 = winograd_g(t0.c, t1.c, t2.c), r3 = winograd_g(t0.d, t1.d, t2.d);
    f32* o = u + e;
    wasm_v128_store(o, r0.a), wasm_v128_store(o + n, r0.b);
    wasm_v128_store(o + 2 * n, r0.c), wasm_v128_store(o + 3 * n, r0.d);
    wasm_v128_store(o + 4 * n, r1.a), wasm_v128_store(o + 5 * n, r1.b);
    wasm_v128_store(o + 6 * n, r1.c), wasm_v128_store(o + 7 * n, r1.d);
    wasm_v128_store(o + 8 * n, r2.a), wasm_v128_store(o + 9 * n, r2.b);
    wasm_v128_store(o + 10 * n, r2.c), wasm_v128_store(o + 11 * n, r2.d);
    wasm_v128_store(o + 12 * n, r3.a), wasm_v128_store(o + 13 * n, r3.b);
    wasm_v128_store(o + 14 * n, r3.c), wasm_v128_store(o + 15 * n, r3.d);
  }
  const int kp = gemm_packed_floats(C, Co);
  for (int xi = 0; xi < 16; xi++) gemm_pack(u + xi * n, Co, 1, C, Co, packed + xi * kp);
}

// The 16 input pixels of tile t's patch: p[r · 4 + s] points at pixel (r, s)'s channel 0, or at
// `zero` (C zeros) where the patch reads padding.
static inline void winograd_patch(const f32* x, const f32* zero, const f32** p, int t, int H,
                                  int W, int C, int Th, int Tw, int pt, int pl) {
  const int tx = t % Tw, ty = (t / Tw) % Th, n = t / (Tw * Th);
  for (int r = 0; r < 4; r++) {
    const int ih = 2 * ty - pt + r;
    for (int s = 0; s < 4; s++) {
      const int iw = 2 * tx - pl + s;
      const int inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
      p[r * 4 + s] = inside ? x + ((n * H + ih) * W + iw) * C : zero;
    }
  }
}

// Bᵀ d B for channels [c, c + 4) of a patch p (winograd_patch): element ξ to v[ξ · vs].
static inline void winograd_input_tile(const f32* const* p, int c, f32* v, int vs) {
#define D(r, s) wasm_v128_load(p[(r) * 4 + (s)] + c)
  const v128x4 c0 = winograd_bt(D(0, 0), D(1, 0), D(2, 0), D(3, 0));
  const v128x4 c1 = winograd_bt(D(0, 1), D(1, 1), D(2, 1), D(3, 1));
  const v128x4 c2 = winograd_bt(D(0, 2), D(1, 2), D(2, 2), D(3, 2));
  const v128x4 c3 = winograd_bt(D(0, 3), D(1, 3), D(2, 3), D(3, 3));
#undef D
  const v128x4 r0 = winograd_bt(c0.a, c1.a, c2.a, c3.a), r1 = winograd_bt(c0.b, c1.b, c2.b, c3.b);
  const v128x4 r2 = winograd_bt(c0.c, c1.c, c2.c, c3.c), r3 = winograd_bt(c0.d, c1.d, c2.d, c3.d);
  wasm_v128_store(v, r0.a), wasm_v128_store(v + vs, r0.b);
  wasm_v128_store(v + 2 * vs, r0.c), wasm_v128_store(v + 3 * vs, r0.d);
  wasm_v128_store(v + 4 * vs, r1.a), wasm_v128_store(v + 5 * vs, r1.b);
  wasm_v128_store(v + 6 * vs, r1.c), wasm_v128_store(v + 7 * vs, r1.d);
  wasm_v128_store(v + 8 * vs, r2.a), wasm_v128_store(v + 9 * vs, r2.b);
  wasm_v128_store(v + 10 * vs, r2.c), wasm_v128_store(v + 11 * vs, r2.d);
  wasm_v128_store(v + 12 * vs, r3.a), wasm_v128_store(v + 13 * vs, r3.b);
  wasm_v128_store(v + 14 * vs, r3.c), wasm_v128_store(v + 15 * vs, r3.d);
}

// Floats from one of the 16 transformed matrices of `tiles` rows × `cols` to the next: padded by
// 32 floats (128 bytes) so that the 16 rows a transform reads or writes at once are not 4 KiB
// apart, the same L1 set (with 256 tiles of 16 channels they would be 16 KiB apart).
static inline int winograd_stride(int tiles, int cols) { return tiles * cols + 32; }

// Floats of scratch winograd_conv needs for `tiles` tiles: the transformed patches and products,
// a zero pixel, a patch's pointers and the GEMM's edge tiles.
EXPORT int winograd_scratch_floats(int tiles, int C, int Co) {
  return 16 * (winograd_stride(tiles, C) + winograd_stride(tiles, Co)) + C + 16 + GEMM_EDGE_FLOATS;
}

// Tiles [t0, t0 + tiles) of the 3×3 stride-1 convolution of the NHWC input x [N, H, W, C] with a
// filter transformed by winograd_filter, padding (pt, pl) above and left, into y [N, Ho, Wo, Co]
// (the whole output; a tile's outputs past Ho or Wo are not written). `scratch` holds
// winograd_scratch_floats(tiles, C, Co) floats.
EXPORT void winograd_conv(const f32* x, const f32* packed, f32* y, int H, int W, int C, int Ho,
                          int Wo, int pt, int pl, int Co, int t0, int tiles, f32* scratch) {
  const int Th = (Ho + 1) / 2, Tw = (Wo + 1) / 2;
  const int vs = winograd_stride(tiles, C), ms = winograd_stride(tiles, Co);
  f32* v = scratch;
  f32* m = v + 16 * vs;
  f32* zero = m + 16 * ms;
  const f32** p = (const f32**)(zero + C);
  f32* edge = (f32*)(p + 16);
  zero_floats(zero, C);
  for (int i = 0; i < tiles; i++) {
    winograd_patch(x, zero, p, t0 + i, H, W, C, Th, Tw, pt, pl);
    for (int c = 0; c < C; c += 4) winograd_input_tile(p, c, v + i * C + c, vs);
  }
  const int kp = gemm_packed_floats(C, Co);
  for (int xi = 0; xi < 16; xi++) {
    gemm_run(v + xi * vs, C, 0, 0, 0, packed + xi * kp, m + xi * ms, Co, tiles, Co, C, 0, 0, edge);
  }
  for (int i = 0; i < tiles; i++) {
    const int t = t0 + i;
    const int tx = t % Tw, ty = (t / Tw) % Th, n = t / (Tw * Th);
    const int two_rows = 2 * ty + 1 < Ho, two_cols = 2 * tx + 1 < Wo;
    f32* out = y + ((n * Ho + 2 * ty) * Wo + 2 * tx) * Co;
    const f32* mi = m + i * Co;
    for (int co = 0; co < Co; co += 4) {
#define M(r, s) wasm_v128_load(mi + ((r) * 4 + (s)) * ms + co)
      const v128x2 c0 = winograd_at(M(0, 0), M(1, 0), M(2, 0), M(3, 0));
      const v128x2 c1 = winograd_at(M(0, 1), M(1, 1), M(2, 1), M(3, 1));
      const v128x2 c2 = winograd_at(M(0, 2), M(1, 2), M(2, 2), M(3, 2));
      const v128x2 c3 = winograd_at(M(0, 3), M(1, 3), M(2, 3), M(3, 3));
#undef M
      const v128x2 r0 = winograd_at(c0.a, c1.a, c2.a, c3.a);
      wasm_v128_store(out + co, r0.a);
      if (two_cols) wasm_v128_store(out + Co + co, r0.b);
      if (two_rows) {
        const v128x2 r1 = winograd_at(c0.b, c1.b, c2.b, c3.b);
        wasm_v128_store(out + Wo * Co + co, r1.a);
        if (two_cols) wasm_v128_store(out + (Wo + 1) * Co + co, r1.b);
      }
    }
  }
}

// ---- The filter gradient of a 3×3 stride-1 convolution by Winograd F(2×2, 3×3). ----
// The forward tile is Aᵀ [U ⊙ V] A with U = G g Gᵀ and V = Bᵀ d B, so the loss's gradient with
// respect to U is V ⊙ (A dY Aᵀ) summed over tiles, dY a tile's 2×2 output gradient (zeros past
// Ho or Wo), and the filter's is Gᵀ dU G. Element ξ of dU is a GEMM over tiles:
//   dU[ξ][co][c] = Σ_t Ŷ[ξ][co][t] · V[ξ][t][c],   Ŷ = A dY Aᵀ, A = (Aᵀ)ᵀ.
// A tile at a time V is written straight into the GEMM's packed panels of GEMM_NR channels, and
// Ŷ transposed (output channels × tiles) as the GEMM's A.

typedef struct {
  v128_t a, b, c;
} v128x3;

// A · (e0, e1), A = [1 0; 1 1; 1 −1; 0 −1].
static inline v128x4 winograd_a(v128_t e0, v128_t e1) {
  return (v128x4){e0, wasm_f32x4_add(e0, e1), wasm_f32x4_sub(e0, e1), wasm_f32x4_neg(e1)};
}

// Gᵀ · (u0, u1, u2, u3), Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1].
static inline v128x3 winograd_gt(v128_t u0, v128_t u1, v128_t u2, v128_t u3) {
  const v128_t half = wasm_f32x4_splat(0.5f);
  const v128_t sum = wasm_f32x4_mul(wasm_f32x4_add(u1, u2), half);
  return (v128x3){wasm_f32x4_add(u0, sum), wasm_f32x4_mul(wasm_f32x4_sub(u1, u2), half),
                  wasm_f32x4_add(sum, u3)};
}

// Channels rounded up to whole GEMM panels.
static inline int winograd_panel_floats(int tiles, int C) { return tiles * gemm_padded(C) + 32; }
// Floats from one ξ of the transposed Ŷ to the next (rows of `tiles` rounded up to 4).
static inline int winograd_dy_stride(int tiles, int Co) { return Co * ((tiles + 3) & ~3) + 32; }

// Floats of scratch winograd_filter_grad needs for `tiles` (at most GEMM_KC) tiles: V packed, Ŷ
// transposed, zeros for a pixel, a patch's pointers, a staging block and the GEMM's edge tiles.
EXPORT int winograd_grad_scratch_floats(int tiles, int C, int Co) {
  const int zeros = C > Co ? C : Co;
  return 16 * (winograd_panel_floats(tiles, C) + winograd_dy_stride(tiles, Co)) + zeros + 16 +
         256 + GEMM_EDGE_FLOATS;
}

// du [16][Co][C] += the gradient with respect to the transformed filter over tiles
// [t0, t0 + tiles) (at most GEMM_KC) of the 3×3 stride-1 convolution of x [N, H, W, C] with
// output gradient dy [N, Ho, Wo, Co] (padding pt, pl); winograd_filter_grad_out turns it into
// the filter's. `scratch` holds winograd_grad_scratch_floats(tiles, C, Co) floats.
EXPORT void winograd_filter_grad(const f32* x, const f32* dy, f32* du, int H, int W, int C,
                                 int Ho, int Wo, int pt, int pl, int Co, int t0, int tiles,
                                 f32* scratch) {
  const int Th = (Ho + 1) / 2, Tw = (Wo + 1) / 2;
  const int vs = winograd_panel_floats(tiles, C), ys = winograd_dy_stride(tiles, Co);
  const int T4 = (tiles + 3) & ~3;
  f32* v = scratch;
  f32* yt = v + 16 * vs;
  f32* zero = yt + 16 * ys;
  const int zeros = C > Co ? C : Co;
  const f32** p = (const f32**)(zero + zeros);
  f32* stage = (f32*)(p + 16);
  f32* edge = stage + 256;
  zero_floats(zero, zeros);
  // V in panels: channel c of tile i at v[ξ · vs + (c / NR) · tiles · NR + i · NR + c % NR].
  for (int i = 0; i < tiles; i++) {
    winograd_patch(x, zero, p, t0 + i, H, W, C, Th, Tw, pt, pl);
    for (int c = 0; c < C; c += 4) {
      winograd_input_tile(p, c, v + (c / GEMM_NR) * tiles * GEMM_NR + i * GEMM_NR + c % GEMM_NR,
                          vs);
    }
    if (C % GEMM_NR != 0) {
      // The last panel's channels past C: zeros.
      f32* pad = v + (C / GEMM_NR) * tiles * GEMM_NR + i * GEMM_NR + C % GEMM_NR;
      for (int xi = 0; xi < 16; xi++) zero_floats(pad + xi * vs, GEMM_NR - C % GEMM_NR);
    }
  }
  // Ŷ transposed, four tiles at a time: yt[ξ · ys + co · T4 + i].
  for (int i0 = 0; i0 < T4; i0 += 4) {
    for (int co = 0; co < Co; co += 4) {
      for (int r = 0; r < 4; r++) {
        const int t = t0 + i0 + r;
        const int tx = t % Tw, ty = (t / Tw) % Th, n = t / (Tw * Th);
        const int real = i0 + r < tiles, right = 2 * tx + 1 < Wo, below = 2 * ty + 1 < Ho;
        const f32* at = dy + ((n * Ho + 2 * ty) * Wo + 2 * tx) * Co + co;
        const v128_t z = wasm_f32x4_splat(0.0f);
        const v128_t e00 = real ? wasm_v128_load(at) : z;
        const v128_t e01 = real && right ? wasm_v128_load(at + Co) : z;
        const v128_t e10 = real && below ? wasm_v128_load(at + Wo * Co) : z;
        const v128_t e11 = real && right && below ? wasm_v128_load(at + (Wo + 1) * Co) : z;
        const v128x4 c0 = winograd_a(e00, e10), c1 = winograd_a(e01, e11);
        const v128x4 r0 = winograd_a(c0.a, c1.a), r1 = winograd_a(c0.b, c1.b);
        const v128x4 r2 = winograd_a(c0.c, c1.c), r3 = winograd_a(c0.d, c1.d);
        f32* s = stage + r * 4;
        wasm_v128_store(s, r0.a), wasm_v128_store(s + 16, r0.b);
        wasm_v128_store(s + 32, r0.c), wasm_v128_store(s + 48, r0.d);
        wasm_v128_store(s + 64, r1.a), wasm_v128_store(s + 80, r1.b);
        wasm_v128_store(s + 96, r1.c), wasm_v128_store(s + 112, r1.d);
        wasm_v128_store(s + 128, r2.a), wasm_v128_store(s + 144, r2.b);
        wasm_v128_store(s + 160, r2.c), wasm_v128_store(s + 176, r2.d);
        wasm_v128_store(s + 192, r3.a), wasm_v128_store(s + 208, r3.b);
        wasm_v128_store(s + 224, r3.c), wasm_v128_store(s + 240, r3.d);
      }
      for (int xi = 0; xi < 16; xi++) {
        transpose4x4(stage + xi * 16, 4, yt + xi * ys + co * T4 + i0, T4);
      }
    }
  }
  f32* edge_a = edge;
  f32* edge_c = edge_a + GEMM_MR * GEMM_KC;
  for (int xi = 0; xi < 16; xi++) {
    for (int j0 = 0; j0 < C; j0 += GEMM_NC) {
      gemm_block(yt + xi * ys, T4, v + xi * vs + j0 * tiles, du + xi * Co * C + j0, C, Co,
                 min_int(GEMM_NC, C - j0), tiles, 1, edge_a, edge_c);
    }
  }
}

// The filter gradient dw [3][3][C][Co] = Gᵀ dU G from du [16][Co][C] (winograd_filter_grad's
// sums); t holds 9 · Co · C floats.
EXPORT void winograd_filter_grad_out(const f32* du, f32* t, f32* dw, int C, int Co) {
  const int n = C * Co;
  for (int e = 0; e < n; e += 4) {
#define U(r, s) wasm_v128_load(du + ((r) * 4 + (s)) * n + e)
    const v128x3 c0 = winograd_gt(U(0, 0), U(1, 0), U(2, 0), U(3, 0));
    const v128x3 c1 = winograd_gt(U(0, 1), U(1, 1), U(2, 1), U(3, 1));
    const v128x3 c2 = winograd_gt(U(0, 2), U(1, 2), U(2, 2), U(3, 2));
    const v128x3 c3 = winograd_gt(U(0, 3), U(1, 3), U(2, 3), U(3, 3));
#undef U
    const v128x3 r0 = winograd_gt(c0.a, c1.a, c2.a, c3.a);
    const v128x3 r1 = winograd_gt(c0.b, c1.b, c2.b, c3.b);
    const v128x3 r2 = winograd_gt(c0.c, c1.c, c2.c, c3.c);
    f32* o = t + e;
    wasm_v128_store(o, r0.a), wasm_v128_store(o + n, r0.b), wasm_v128_store(o + 2 * n, r0.c);
    wasm_v128_store(o + 3 * n, r1.a), wasm_v128_store(o + 4 * n, r1.b);
    wasm_v128_store(o + 5 * n, r1.c), wasm_v128_store(o + 6 * n, r2.a);
    wasm_v128_store(o + 7 * n, r2.b), wasm_v128_store(o + 8 * n, r2.c);
  }
  transpose_batched(t, dw, 9, Co, C);
}
