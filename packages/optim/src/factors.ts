import {
  concat,
  matMul,
  mul,
  pad,
  reshape,
  stridedSlice,
  tidy,
  transpose,
  type Tensor,
  type Tensor2D,
  type Tensor3D,
  type Tensor4D,
} from '@tensorflow/tfjs-core';

/** What a layer saw in a step, as `@thor-ts/model`'s curvature taps record it. */
export interface CurvatureSource {
  layer: string;
  geometry: {
    kind: 'conv2d' | 'linear';
    kernel?: [number, number];
    stride?: number;
    padding?: [number, number, number, number];
  };
  input: Tensor;
  outputGrad?: Tensor;
}

/** Rows of a factor's "X": the im2col of a convolution's input, or a linear layer's input. */
export function factorRows(src: CurvatureSource): Tensor2D {
  return tidy(() => {
    if (src.geometry.kind === 'linear') return src.input as Tensor2D;
    const x = src.input as Tensor4D;
    const [kh, kw] = src.geometry.kernel ?? [1, 1];
    const s = src.geometry.stride ?? 1;
    const [pt, pb, pl, pr] = src.geometry.padding ?? [0, 0, 0, 0];
    const [n, h, w, c] = x.shape;
    const ho = Math.floor((h + pt + pb - kh) / s) + 1;
    const wo = Math.floor((w + pl + pr - kw) / s) + 1;
    const xp =
      pt + pb + pl + pr > 0
        ? pad(x, [
            [0, 0],
            [pt, pb],
            [pl, pr],
            [0, 0],
          ])
        : x;
    // One [N, Ho, Wo, C] view per tap, taps in (i, j) order: the columns match HWIO kernels.
    const taps: Tensor4D[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        taps.push(
          kh * kw === 1 && s === 1
            ? xp
            : (stridedSlice(
                xp,
                [0, i, j, 0],
                [n, i + (ho - 1) * s + 1, j + (wo - 1) * s + 1, c],
                [1, s, s, 1],
              ) as Tensor4D),
        );
      }
    }
    const cols = taps.length === 1 ? (taps[0] as Tensor4D) : concat(taps, 3);
    return reshape(cols, [n * ho * wo, kh * kw * c]);
  });
}

/** Output positions per sample (T): Ho·Wo for a convolution, 1 for a linear layer. */
export function positionsPerSample(src: CurvatureSource): number {
  if (src.geometry.kind === 'linear') return 1;
  const g = src.outputGrad ?? src.input;
  return (g.shape[1] as number) * (g.shape[2] as number);
}

/** The layer's output gradient as rows [N·T, Cout], rescaled per sample (× batch size). */
export function gradientRows(src: CurvatureSource, batchScale: number): Tensor2D {
  if (src.outputGrad === undefined) {
    throw new Error(
      `THOR: layer '${src.layer}' has no output gradient: run the backward pass with its tap`,
    );
  }
  const g = src.outputGrad;
  const cout = g.shape[g.shape.length - 1] as number;
  return tidy(() => reshape(mul(g, batchScale), [g.size / cout, cout]));
}

/**
 * The diagonal blocks of rowsᵀ·rows / divisor, blocks of `block` columns (the last padded with
 * zeros): [nb, block, block]. Only those blocks are computed, never the full product.
 */
export function diagonalBlocks(rows: Tensor2D, block: number, divisor: number): Tensor3D {
  return tidy(() => {
    const [m, k] = rows.shape;
    const nb = Math.ceil(k / block);
    const padded =
      nb * block === k
        ? rows
        : pad(rows, [
            [0, 0],
            [0, nb * block - k],
          ]);
    const byBlock = transpose(reshape(padded, [m, nb, block]), [1, 0, 2]) as Tensor3D;
    return mul(matMul(byBlock, byBlock, true, false), 1 / divisor) as Tensor3D;
  });
}
