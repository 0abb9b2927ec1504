// npm run bench:kernels [-- --batch 16 --reps 5 --only <name substring> --backend wasm]
//
// GFLOP/s of the forward convolution, its input gradient and its filter gradient for every
// distinct ResNet-50 v1.5 conv shape, on one tfjs backend in this process (one thread), as a table
// and as one JSON line. Each figure is the median of --reps timed runs after one warm-up. The wasm
// backend computes synchronously, so a kernel's time is the time of its call; outputs are never
// read back (reading a large tensor out of the wasm heap costs more than many kernels).
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';

import { initBackend, type BackendName } from '../dist/index.js';
import { resnet50Convs, type ConvShape } from './resnet50_convs.js';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '16' },
    reps: { type: 'string', default: '5' },
    only: { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
    'stock-wasm': { type: 'boolean', default: false },
  },
});
const batch = Number(values.batch);
const reps = Number(values.reps);
const init = await initBackend({ backend: values.backend as BackendName });

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
    inputGrad: rate(inputGrad),
    filterGrad: rate(filterGrad),
  };
}

const shapes = resnet50Convs.filter(
  (s) => values.only === undefined || s.name.includes(values.only),
);
const rows = shapes.map(measure);
const f1 = (v: number) => v.toFixed(1).padStart(7);
console.log(
  `backend ${init.backend} (simd ${init.simd}, ${init.threads} thread), batch ${batch}, ` +
    `median of ${reps}; GFLOP/s, and each gradient as a ratio to the forward conv`,
);
console.log(
  `${'conv'.padEnd(24)} ${'shape'.padEnd(24)} ${'fwd'.padStart(7)} ${'dInput'.padStart(7)} ${'dFilter'.padStart(7)}  dIn/fwd dFil/fwd`,
);
for (const r of rows) {
  console.log(
    `${r.name.padEnd(24)} ${r.shape.padEnd(24)} ${f1(r.forward)} ${f1(r.inputGrad)} ${f1(r.filterGrad)}  ` +
      `${(r.inputGrad / r.forward).toFixed(2).padStart(7)} ${(r.filterGrad / r.forward).toFixed(2).padStart(8)}`,
  );
}
// Whole-network rates: each shape weighted by its FLOPs and how often ResNet-50 uses it.
const total = (key: 'forward' | 'inputGrad' | 'filterGrad') => {
  let flop = 0;
  let seconds = 0;
  rows.forEach((r, i) => {
    const count = (shapes[i] as ConvShape).count;
    flop += r.gflop * count;
    seconds += (r.gflop * count) / r[key];
  });
  return flop / seconds;
};
const summary = {
  forward: total('forward'),
  inputGrad: total('inputGrad'),
  filterGrad: total('filterGrad'),
};
console.log(
  `${'all convs, weighted'.padEnd(49)} ${f1(summary.forward)} ${f1(summary.inputGrad)} ${f1(summary.filterGrad)}  ` +
    `${(summary.inputGrad / summary.forward).toFixed(2).padStart(7)} ${(summary.filterGrad / summary.forward).toFixed(2).padStart(8)}`,
);
console.log(
  JSON.stringify({ bench: 'kernels', backend: init.backend, batch, reps, rows, summary }),
);
