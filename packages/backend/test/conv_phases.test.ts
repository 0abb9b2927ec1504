import { describe, expect, it } from 'vitest';

import { axisPhases } from '../dist/index.js';

/**
 * Along one axis, the input gradient of a strided correlation by its definition:
 * dx[o·s + i − p] += dy[o] · w[i].
 */
function direct(dy: number[], w: number[], inSize: number, s: number, p: number): number[] {
  const dx = new Array<number>(inSize).fill(0);
  dy.forEach((d, o) =>
    w.forEach((wi, i) => {
      const h = o * s + i - p;
      if (h >= 0 && h < inSize) dx[h] = (dx[h] as number) + d * wi;
    }),
  );
  return dx;
}

/** The same gradient assembled from the phases: a stride-1 correlation of cropped, padded dy. */
function viaPhases(dy: number[], w: number[], inSize: number, s: number, p: number): number[] {
  const dx = new Array<number>(inSize).fill(0);
  for (const ph of axisPhases(inSize, dy.length, w.length, s, p)) {
    const taps = Array.from(
      { length: ph.taps },
      (_, u) => w[ph.i0 + s * (ph.taps - 1 - u)] as number,
    );
    const src = [
      ...new Array<number>(ph.padBefore).fill(0),
      ...dy.slice(ph.cropBegin, ph.cropEnd),
      ...new Array<number>(ph.padAfter).fill(0),
    ];
    if (ph.taps > 0) expect(src.length - ph.taps + 1).toBe(ph.length);
    for (let q = 0; q < ph.length; q++) {
      let sum = 0;
      for (let u = 0; u < ph.taps; u++) sum += (src[q + u] as number) * (taps[u] as number);
      dx[q * s + ph.r] = sum;
    }
  }
  return dx;
}

describe('axisPhases', () => {
  it('reassembles the strided input gradient for every size, kernel, stride and padding', () => {
    let checked = 0;
    for (let inSize = 1; inSize <= 12; inSize++)
      for (let k = 1; k <= 7; k++)
        for (let s = 1; s <= 4; s++)
          for (let before = 0; before < k; before++)
            for (let after = 0; after < k; after++) {
              const outSize = Math.floor((inSize + before + after - k) / s) + 1;
              if (outSize < 1) continue;
              // Distinct powers of two make every misplaced or missing term visible.
              const dy = Array.from({ length: outSize }, (_, o) => 2 ** o);
              const w = Array.from({ length: k }, (_, i) => 3 ** i);
              expect(viaPhases(dy, w, inSize, s, before)).toEqual(direct(dy, w, inSize, s, before));
              checked++;
            }
    expect(checked).toBeGreaterThan(3000);
  });

  it('leaves a phase empty when no tap reaches it (1×1 kernel, stride 2)', () => {
    const phases = axisPhases(8, 4, 1, 2, 0);
    expect(phases.map((p) => p.taps)).toEqual([1, 0]);
  });
});
