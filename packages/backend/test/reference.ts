// Float64 reference implementations, written as the definitions read (plain loops), for checks.

export interface Conv2dGeometry {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  /** Padding before (top, left); the output size is given, so padding after follows from it. */
  pt: number;
  pl: number;
  ho: number;
  wo: number;
}

const at4 = (d1: number, d2: number, d3: number) => (a: number, b: number, c: number, e: number) =>
  ((a * d1 + b) * d2 + c) * d3 + e;

/**
 * Visits every term x[n, oh·sh + i − pt, ow·sw + j − pl, c] · w[i, j, c, o] of a convolution that
 * reads inside the image, as flat indices into x, y (= dy) and w. Both gradients are sums of
 * these terms: dx[xAt] += dy[yAt]·w[wAt] and dw[wAt] += x[xAt]·dy[yAt].
 */
function forEachTerm(g: Conv2dGeometry, visit: (xAt: number, yAt: number, wAt: number) => void) {
  const X = at4(g.h, g.w, g.ci);
  const Y = at4(g.ho, g.wo, g.co);
  const F = at4(g.kw, g.ci, g.co);
  for (let n = 0; n < g.n; n++)
    for (let oh = 0; oh < g.ho; oh++)
      for (let ow = 0; ow < g.wo; ow++)
        for (let i = 0; i < g.kh; i++)
          for (let j = 0; j < g.kw; j++) {
            const ih = oh * g.sh + i - g.pt;
            const iw = ow * g.sw + j - g.pl;
            if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
            for (let c = 0; c < g.ci; c++)
              for (let o = 0; o < g.co; o++) visit(X(n, ih, iw, c), Y(n, oh, ow, o), F(i, j, c, o));
          }
}

/** y[n,oh,ow,co] = Σ x[n, oh·sh + i − pt, ow·sw + j − pl, ci] · w[i,j,ci,co]. */
export function conv2d64(g: Conv2dGeometry, x: ArrayLike<number>, f: ArrayLike<number>) {
  const y = new Float64Array(g.n * g.ho * g.wo * g.co);
  forEachTerm(g, (xAt, yAt, wAt) => {
    y[yAt] = (y[yAt] as number) + (x[xAt] as number) * (f[wAt] as number);
  });
  return y;
}

/** dx[n,h,w,ci] = Σ dy[n,oh,ow,co] · w[i,j,ci,co] over oh·sh + i − pt = h, ow·sw + j − pl = w. */
export function conv2dInputGrad64(g: Conv2dGeometry, dy: ArrayLike<number>, f: ArrayLike<number>) {
  const dx = new Float64Array(g.n * g.h * g.w * g.ci);
  forEachTerm(g, (xAt, yAt, wAt) => {
    dx[xAt] = (dx[xAt] as number) + (dy[yAt] as number) * (f[wAt] as number);
  });
  return dx;
}

/** dw[i,j,ci,co] = Σ x[n, oh·sh + i − pt, ow·sw + j − pl, ci] · dy[n,oh,ow,co]. */
export function conv2dFilterGrad64(g: Conv2dGeometry, x: ArrayLike<number>, dy: ArrayLike<number>) {
  const dw = new Float64Array(g.kh * g.kw * g.ci * g.co);
  forEachTerm(g, (xAt, yAt, wAt) => {
    dw[wAt] = (dw[wAt] as number) + (x[xAt] as number) * (dy[yAt] as number);
  });
  return dw;
}

/** out[b] = op(a[b]) · op(b[b]) with batch broadcasting of size-1 batches, in float64. */
export function matmul64(
  a: ArrayLike<number>,
  [ba, ra, ca]: [number, number, number],
  b: ArrayLike<number>,
  [bb, rb, cb]: [number, number, number],
  transposeA: boolean,
  transposeB: boolean,
) {
  const m = transposeA ? ca : ra;
  const k = transposeA ? ra : ca;
  const n = transposeB ? rb : cb;
  const batch = Math.max(ba, bb);
  const out = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const ao = (ba === 1 ? 0 : t) * ra * ca;
    const bo = (bb === 1 ? 0 : t) * rb * cb;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = a[ao + (transposeA ? p * ca + i : i * ca + p)] as number;
          const bv = b[bo + (transposeB ? j * cb + p : p * cb + j)] as number;
          s += av * bv;
        }
        out[(t * m + i) * n + j] = s;
      }
  }
  return out;
}

/**
 * Largest |actual − expected| relative to the largest |expected|: float32 sums of a few hundred
 * terms land near 1e-6 of the result's scale, so checks use 1e-5.
 */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new Error(`expected ${expected.length} values, found ${actual.length}`);
  }
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs((actual[i] as number) - (expected[i] as number)));
    scale = Math.max(scale, Math.abs(expected[i] as number));
  }
  return scale === 0 ? diff : diff / scale;
}

/** Deterministic values in [-1, 1) (a 32-bit LCG), so failures reproduce. */
export function values(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
