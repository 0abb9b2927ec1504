/**
 * The inverse of a symmetric positive-definite n×n matrix (row-major, float64) through its
 * Cholesky factor: A = LLᵀ, A⁻¹ = L⁻ᵀL⁻¹. Returns undefined when A is not positive definite
 * (a pivot ≤ 0 or not finite), so the caller can add damping and retry.
 */
export function choleskyInverse(a: Float64Array, n: number): Float64Array | undefined {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j] as number;
    for (let k = 0; k < j; k++) d -= (l[j * n + k] as number) ** 2;
    if (!(d > 0) || !Number.isFinite(d)) return undefined;
    const ljj = Math.sqrt(d);
    l[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j] as number;
      for (let k = 0; k < j; k++) s -= (l[i * n + k] as number) * (l[j * n + k] as number);
      l[i * n + j] = s / ljj;
    }
  }
  // M = L⁻¹ (lower triangular), by forward substitution column by column.
  const m = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    m[c * n + c] = 1 / (l[c * n + c] as number);
    for (let i = c + 1; i < n; i++) {
      let s = 0;
      for (let k = c; k < i; k++) s += (l[i * n + k] as number) * (m[k * n + c] as number);
      m[i * n + c] = -s / (l[i * n + i] as number);
    }
  }
  // A⁻¹ = MᵀM, symmetric.
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += (m[k * n + i] as number) * (m[k * n + j] as number);
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  return inv;
}
