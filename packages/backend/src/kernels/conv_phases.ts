/**
 * How a strided convolution's input gradient splits into stride-1 convolutions, one per phase.
 *
 * Along one axis the forward pass reads `x[o * s + i - padBefore]` for output `o` and tap `i`.
 * Input rows `h = q * s + r` (phase `r`) get gradient only from taps `i ≡ r + padBefore (mod s)`:
 * `dx[q * s + r] = Σ_t dy[q + c - t] · w[i0 + s·t]`, a stride-1 correlation of `dy` with those
 * taps reversed. Each phase is one small convolution; together they do exactly the forward FLOPs.
 */
export interface AxisPhase {
  /** Which input rows this phase produces: `q * stride + r`. */
  r: number;
  /** First tap of this phase and the number of taps (`i0 + stride * t`). */
  i0: number;
  taps: number;
  /** Rows of this phase: `ceil((inSize - r) / stride)`. */
  length: number;
  /** Rows of dy the convolution reads: `[cropBegin, cropEnd)`. */
  cropBegin: number;
  cropEnd: number;
  /** Padding of the cropped dy for the stride-1 convolution. */
  padBefore: number;
  padAfter: number;
}

export function axisPhases(
  inSize: number,
  outSize: number,
  kernel: number,
  stride: number,
  padBefore: number,
): AxisPhase[] {
  const phases: AxisPhase[] = [];
  for (let r = 0; r < stride && r < inSize; r++) {
    const i0 = (((r + padBefore) % stride) + stride) % stride;
    const taps = i0 < kernel ? Math.ceil((kernel - i0) / stride) : 0;
    const length = Math.ceil((inSize - r) / stride);
    const c = (r + padBefore - i0) / stride;
    const before = taps - 1 - c;
    const cropBegin = Math.max(0, -before);
    const pad = Math.max(0, before);
    const cropEnd = Math.min(outSize, cropBegin + length + taps - 1 - pad);
    phases.push({
      r,
      i0,
      taps: cropEnd > cropBegin ? taps : 0,
      length,
      cropBegin,
      cropEnd,
      padBefore: pad,
      padAfter: length + taps - 1 - pad - (cropEnd - cropBegin),
    });
  }
  return phases;
}
