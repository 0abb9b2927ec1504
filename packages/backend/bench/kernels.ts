// npm run bench:kernels [-- --batch 16 --reps 5 --only <name substring> --backend wasm
//                          --shapes <file.json> --winograd on|off]
//
// GFLOP/s of the forward convolution, its input gradient and its filter gradient for every
// distinct ResNet-50 v1.5 conv shape (or those of another network: --shapes, a JSON array as
// `convShapesFromJson` reads it, relative to where npm was run), on one tfjs backend in this
// process (one thread), as a table and as one JSON line. On wasm also tfjs-backend-wasm's own forward convolution (XNNPACK), which
// the package replaces, and the package's GEMM on operands that stay in cache (its peak). Each figure is the median of --reps timed runs after one warm-up. The wasm
// backend computes synchronously, so a kernel's time is the time of its call; outputs are never
// read back (reading a large tensor out of the wasm heap costs more than many kernels).
// `--winograd off` runs the 3×3 stride-1 convolutions by the direct GEMM instead of Winograd's.
import { parseArgs } from 'node:util';

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';

import { initBackend, type BackendName } from '../dist/index.js';
import { convShapesFromJson, resnet50Convs, type ConvShape } from './resnet50_convs.js';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '16' },
    reps: { type: 'string', default: '5' },
    only: { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
    shapes: { type: 'string' },
    winograd: { type: 'string', default: 'on' },
  },
});
if (values.winograd !== 'on' && values.winograd !== 'off') {
  throw new Error(`bench:kernels: expected --winograd on or off, found '${values.winograd}'`);
}
// npm runs the script in this package's folder; INIT_CWD is where it was run from.
const shapesFile =
  values.shapes === undefined ? undefined : resolve(process.env['INIT_CWD'] ?? '.', values.shapes);
const network =
  shapesFile === undefined
    ? resnet50Convs
    : convShapesFromJson(readFileSync(shapesFile, 'utf8'), shapesFile);
const batch = Number(values.batch);
const reps = Number(values.reps);
// tfjs-backend-wasm's own Conv2D (XNNPACK), taken before initBackend() registers the package's.
const xnnpackConv2d = tf.getKernel('Conv2D', 'wasm');
const init = await initBackend({
  backend: values.backend as BackendName,
  winograd: values.winograd === 'on',
});
const onWasm = init.backend === 'wasm' && xnnpackConv2d !== undefined;
if (onWasm) xnnpackConv2d.setupFunc?.(tf.backend() as never);

/** The forward convolution in XNNPACK, as a tensor the caller disposes. */
function xnnpackForward(x: tf.Tensor4D, w: tf.Tensor4D, attrs: object): tf.Tensor {
  const out = (xnnpackConv2d as tf.KernelConfig).kernelFunc({
    inputs: { x, filter: w },
    backend: tf.backend(),
    attrs: { ...attrs, dilations: 1 } as never,
  }) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(out);
}

/**
 * The package's GEMM, in the build the kernels run (wasm/training_kernels.wasm, or
 * training_kernels_relaxed.wasm where the runtime has relaxed SIMD), on a 64 × 64 × 256 product
 * whose operands stay in cache, repeated: the most its 4 × 8 tiles reach on this CPU and runtime,
 * in GFLOP/s.
 */
function gemmPeak(): number {
  const memory = new WebAssembly.Memory({ initial: 64 });
  const build = init.relaxedSimd ? 'training_kernels_relaxed' : 'training_kernels';
  const wasm = new URL(`../wasm/${build}.wasm`, import.meta.url);
  const e = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(wasm)), {
    env: { memory },
  }).exports as Record<string, (...args: number[]) => number>;
  const [m, n, k] = [64, 64, 256];
  const f32 = new Float32Array(memory.buffer);
  for (let i = 0; i < m * k + k * n; i++) f32[i] = Math.sin(i);
  const [a, b, c] = [0, m * k * 4, (m * k + k * n) * 4];
  const scratch = c + m * n * 4;
  const run = () => e['gemm_f32']!(a, k, b, n, 1, c, n, m, n, k, 0, scratch);
  const calls = 2000;
  const rates: number[] = [];
  for (let r = 0; r <= reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) run();
    rates.push((2 * m * n * k * calls) / ((performance.now() - t0) / 1e3) / 1e9);
  }
  rates.shift();
  return rates.sort((p, q) => p - q)[rates.length >> 1] as number;
}

function medianMs(run: () => tf.Tensor): number {
  const times: number[] = [];
  for (let r = 0; r <= reps; r++) {
    const t0 = performance.now();
    const out = run();
    if (values.backend !== 'wasm') out.dataSync();
    times.push(performance.now() - t0);
    out.dispose();
  }
  times.shift();
  times.sort((a, b) => a - b);
  return times[times.length >> 1] as number;
}

interface Row {
  name: string;
  shape: string;
  gflop: number;
  forward: number;
  /** tfjs-backend-wasm's own forward convolution (XNNPACK); wasm only. */
  xnnpackForward?: number;
  inputGrad: number;
  filterGrad: number;
}

function measure(s: ConvShape): Row {
  const pad: [[number, number], [number, number], [number, number], [number, number]] = [
    [0, 0],
    [s.pad, s.pad],
    [s.pad, s.pad],
    [0, 0],
  ];
  const x = tf.randomNormal<tf.Rank.R4>([batch, s.size, s.size, s.cin]);
  const w = tf.randomNormal<tf.Rank.R4>([s.k, s.k, s.cin, s.cout], 0, 0.05);
  const y = tf.conv2d(x, w, s.stride, pad);
  const dy = tf.randomNormal<tf.Rank.R4>(y.shape);
  const [, ho, wo] = y.shape;
  const gflop = (2 * batch * ho * wo * s.cin * s.cout * s.k * s.k) / 1e9;
  const attrs = { strides: s.stride, pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
  const forward = medianMs(() => tf.conv2d(x, w, s.stride, pad));
  const xnnpack = onWasm ? medianMs(() => xnnpackForward(x, w, attrs)) : undefined;
  const inputGrad = medianMs(
    () =>
      tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, {
        ...attrs,
        inputShape: x.shape,
      } as never) as tf.Tensor,
  );
  const filterGrad = medianMs(
    () =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
        ...attrs,
        filterShape: w.shape,
      } as never) as tf.Tensor,
  );
  tf.dispose([x, w, y, dy]);
  const rate = (ms: number) => gflop / (ms / 1e3);
  return {
    name: s.name,
    shape: `${s.size}x${s.size}x${s.cin}>${s.cout} k${s.k} s${s.stride}`,
    gflop,
    forward: rate(forward),
    ...(xnnpack === undefined ? {} : { xnnpackForward: rate(xnnpack) }),
    inputGrad: rate(inputGrad),
    filterGrad: rate(filterGrad),
  };
}

const shapes = network.filter((s) => values.only === undefined || s.name.includes(values.only));
const rows = shapes.map(measure);
const f1 = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1)).padStart(7);
const r2 = (v: number | undefined, w = 8) => (v === undefined ? '-' : v.toFixed(2)).padStart(w);
const peak = onWasm ? gemmPeak() : undefined;
console.log(
  `backend ${init.backend} (simd ${init.simd}, relaxed SIMD ${init.relaxedSimd}, Winograd ${init.winograd}, ${init.threads} thread, Node.js ${process.version}), batch ${batch}, ` +
    `median of ${reps}; GFLOP/s (the direct product's flops over the time, so Winograd's 3x3s ` +
    `can pass the GEMM's peak), each gradient as a ratio to the forward conv, and the forward ` +
    `as a ratio to XNNPACK's`,
);
if (peak !== undefined) {
  console.log(
    `the package's GEMM (${init.relaxedSimd ? 'relaxed SIMD' : '128-bit SIMD'} build) with its operands in cache (64 x 64 x 256): ${peak.toFixed(1)} GFLOP/s`,
  );
}
console.log(
  `${'conv'.padEnd(24)} ${'shape'.padEnd(24)} ${'fwd'.padStart(7)} ${'dInput'.padStart(7)} ${'dFilter'.padStart(7)} ${'XNNPACK'.padStart(7)}  dIn/fwd dFil/fwd fwd/XNNPACK`,
);
const line = (name: string, r: Omit<Row, 'name' | 'shape' | 'gflop'>) =>
  `${name} ${f1(r.forward)} ${f1(r.inputGrad)} ${f1(r.filterGrad)} ${f1(r.xnnpackForward)}  ` +
  `${r2(r.inputGrad / r.forward, 7)} ${r2(r.filterGrad / r.forward)} ${r2(r.xnnpackForward && r.forward / r.xnnpackForward, 11)}`;
for (const r of rows) console.log(line(`${r.name.padEnd(24)} ${r.shape.padEnd(24)}`, r));
// Whole-network rates: each shape weighted by its FLOPs and how often the network uses it.
const total = (key: 'forward' | 'inputGrad' | 'filterGrad' | 'xnnpackForward') => {
  let flop = 0;
  let seconds = 0;
  rows.forEach((r, i) => {
    const count = (shapes[i] as ConvShape).count;
    flop += r.gflop * count;
    seconds += (r.gflop * count) / (r[key] ?? NaN);
  });
  return Number.isNaN(seconds) ? undefined : flop / seconds;
};
const summary = {
  forward: total('forward') as number,
  inputGrad: total('inputGrad') as number,
  filterGrad: total('filterGrad') as number,
  xnnpackForward: total('xnnpackForward'),
};
console.log(line('all convs, weighted'.padEnd(49), summary));
console.log(
  JSON.stringify({
    bench: 'kernels',
    backend: init.backend,
    winograd: init.winograd,
    batch,
    reps,
    gemmPeak: peak,
    rows,
    summary,
  }),
);
