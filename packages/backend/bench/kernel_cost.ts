// The work of one tfjs kernel call, from the shapes tfjs's profiler records, for `bench:profile`.
// Convolutions and matrix products count FLOPs (a multiply-add is 2); every other kernel counts
// the bytes it reads and writes (each input and output once, 4 bytes an element); kernels that
// only share their input's data move nothing.

export type KernelCost =
  { kind: 'flops'; amount: number } | { kind: 'bytes'; amount: number } | { kind: 'view' };

/** Kernels that hand back their input's data: Reshape everywhere, Identity as this package registers it on wasm. */
const views = new Set(['Reshape', 'Identity']);

const size = (shape: readonly number[]) => shape.reduce((n, d) => n * d, 1);

function dims(
  name: string,
  role: string,
  shape: readonly number[] | null | undefined,
  rank: number,
) {
  if (shape == null || shape.length !== rank) {
    throw new Error(
      `kernelCost: ${name} expected ${role} of rank ${rank}, found ${shape == null ? 'none' : `[${shape}]`}`,
    );
  }
  return shape as number[];
}

/**
 * 2·N·Ho·Wo·Co·Kh·Kw·Ci for a convolution whose output (or output gradient) is `y` [N, Ho, Wo, Co]
 * and filter `w` [Kh, Kw, Ci, Co]: the forward conv and each of its two gradients do this many.
 */
function convFlops(name: string, y: readonly number[], w: readonly number[]): number {
  if (y[3] !== w[3]) {
    throw new Error(
      `kernelCost: ${name} expected the output channels of [${y}] to match the filter [${w}]`,
    );
  }
  return 2 * size(y) * (w[0] as number) * (w[1] as number) * (w[2] as number);
}

export function kernelCost(
  name: string,
  inputShapes: readonly (readonly number[] | null)[],
  outputShapes: readonly (readonly number[])[],
): KernelCost {
  const [in0, in1] = inputShapes;
  const out0 = outputShapes[0];
  switch (name) {
    case 'Conv2D': // inputs {x, filter}, output y
      return {
        kind: 'flops',
        amount: convFlops(name, dims(name, 'y', out0, 4), dims(name, 'filter', in1, 4)),
      };
    case 'Conv2DBackpropInput': // inputs {dy, filter}, output dx
      return {
        kind: 'flops',
        amount: convFlops(name, dims(name, 'dy', in0, 4), dims(name, 'filter', in1, 4)),
      };
    case 'Conv2DBackpropFilter': // inputs {x, dy}, output dfilter
      return {
        kind: 'flops',
        amount: convFlops(name, dims(name, 'dy', in1, 4), dims(name, 'dfilter', out0, 4)),
      };
    case 'BatchMatMul': {
      // a ends in [M, K] or, transposed, [K, M]; the output ends in [M, N]: 2·size(out)·K.
      if (in0 == null || in0.length < 2 || out0 == null || out0.length < 2) {
        throw new Error(
          `kernelCost: BatchMatMul expected a and output of rank ≥ 2, found [${in0}] and [${out0}]`,
        );
      }
      const [rows, cols] = in0.slice(-2) as [number, number];
      const k = rows === out0[out0.length - 2] ? cols : rows;
      return { kind: 'flops', amount: 2 * size(out0) * k };
    }
  }
  if (views.has(name)) return { kind: 'view' };
  const elements = [...inputShapes, ...outputShapes].reduce(
    (n, s) => n + (s == null ? 0 : size(s)),
    0,
  );
  return { kind: 'bytes', amount: 4 * elements };
}
