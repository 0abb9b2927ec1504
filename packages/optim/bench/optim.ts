// npm run bench:optim [-- --batch 16 --size 224 --steps 3 --frequency 10 --model resnet50,light]
//
// Per-step seconds of one process's train step (forward, backward, update) with momentum SGD,
// and with THOR on a non-refresh step (precondition only) and on a refresh step (curvature taps,
// factors, inverses, precondition), on ResNet-50 and on a small ResNet (layers [1, 1, 1], widths
// [16, 32, 64], 28×28). THOR amortized at frequency f = (refresh + (f − 1)·non-refresh) / f, at
// 834 (the reference) and at --frequency (the small preset's). All figures come from the same
// run, so the ratios hold on a shared machine. Medians over --steps after one warm-up step; the
// refresh step is also split into its parts (taps, factors, inverses, precondition). A table and
// one JSON line.
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '@thor-ts/backend';
import { CurvatureTaps, resnet50, resnetLight, type ResNet } from '@thor-ts/model';

import { MomentumSGD, softmaxCrossEntropy, Thor, type ThorReport } from '../dist/index.js';

const { values } = parseArgs({
  options: {
    batch: { type: 'string', default: '16' },
    size: { type: 'string', default: '224' },
    'light-batch': { type: 'string', default: '128' },
    steps: { type: 'string', default: '3' },
    frequency: { type: 'string', default: '10' },
    model: { type: 'string', default: 'resnet50,light' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const steps = Number(values.steps);
const frequency = Number(values.frequency);
await initBackend({ backend: values.backend as BackendName });

interface Case {
  name: string;
  batch: number;
  size: number;
  classes: number;
  make: () => ResNet;
}
const cases: Record<string, Case> = {
  resnet50: {
    name: 'resnet50',
    batch: Number(values.batch),
    size: Number(values.size),
    classes: 1000,
    make: () => resnet50({ seed: 1 }),
  },
  light: {
    name: 'light',
    batch: Number(values['light-batch']),
    size: 28,
    classes: 10,
    make: () => resnetLight({ layers: [1, 1, 1], widths: [16, 32, 64], classes: 10, seed: 1 }),
  },
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

/** Medians of each named part over `steps` runs after one warm-up. */
function timed(run: (lap: (part: string) => void) => void): Record<string, number> {
  const samples: Record<string, number[]> = {};
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    let last = t0;
    const lap = (part: string) => {
      const now = performance.now();
      if (i > 0) (samples[part] ??= []).push((now - last) / 1e3);
      last = now;
    };
    run(lap);
    if (i > 0) (samples['total'] ??= []).push((performance.now() - t0) / 1e3);
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
}

function bench(c: Case) {
  const model = c.make();
  const x = tf.randomNormal<tf.Rank.R4>([c.batch, c.size, c.size, 3], 0, 1, 'float32', 3);
  const y = tf.tensor1d(
    Array.from({ length: c.batch }, (_, i) => (i * 7) % c.classes),
    'int32',
  );
  const params = new Map([...model.parameters()].map(([k, e]) => [k, e.variable!]));
  const names = new Map([...params].map(([k, v]) => [v.name, k]));
  const opt = new MomentumSGD(params, { lr: 1e-4, momentum: 0.9, weightDecay: 5e-4 });
  const thor = new Thor({ damping: 0.03, refresh: { every: 834 } });

  /** Forward and backward; taps when given. Returns gradients by parameter name. */
  const gradients = (taps?: CurvatureTaps) => {
    const { value, grads } = tf.variableGrads(() =>
      softmaxCrossEntropy(model.forward(x, { training: true, taps }), y, 0.1),
    );
    value.dataSync();
    value.dispose();
    return new Map(Object.entries(grads).map(([v, g]) => [names.get(v)!, g]));
  };
  const apply = (update: Map<string, tf.Tensor>, grads: Map<string, tf.Tensor>) => {
    opt.step(update);
    // Synchronise on the last weight so the time includes the whole update.
    [...params.values()].at(-1)?.dataSync();
    tf.dispose([...new Set([...grads.values(), ...update.values()])]);
  };

  const sgd = timed((lap) => {
    const g = gradients();
    lap('backward');
    apply(g, g);
    lap('update');
  });
  let report: ThorReport | undefined;
  const refresh = timed((lap) => {
    const taps = new CurvatureTaps();
    const g = gradients(taps);
    lap('backward');
    report = { step: 0, refreshed: [], retried: [], nonFinite: [], stopped: [] };
    const factors = thor.computeFactors(taps.all());
    taps.dispose();
    lap('factors');
    const chosen = thor.selectRefresh(0, factors, report);
    report.refreshed = chosen;
    thor.setInverses(thor.invert(chosen, factors, 0, report));
    tf.dispose([...factors.values()].flatMap((f) => [f.a, f.g]));
    lap('inverses');
    const update = thor.precondition(g, report);
    update.get([...update.keys()].at(-1)!)?.dataSync();
    lap('precondition');
    apply(update, g);
    lap('update');
  });
  const plain = timed((lap) => {
    const g = gradients();
    lap('backward');
    const update = thor.precondition(g);
    lap('precondition');
    apply(update, g);
    lap('update');
  });
  const tensors = tf.memory().numTensors;
  thor.dispose();
  opt.dispose();
  model.dispose();
  tf.dispose([x, y]);
  const amortized = (f: number) => (refresh.total! + (f - 1) * plain.total!) / f;
  return {
    model: c.name,
    batch: c.batch,
    size: c.size,
    layers: report?.refreshed.length,
    retried: report?.retried.length,
    sgd: sgd.total!,
    thorPlain: plain.total!,
    thorRefresh: refresh.total!,
    thor834: amortized(834),
    thorSmall: amortized(frequency),
    refreshParts: refresh,
    ratio834: amortized(834) / sgd.total!,
    ratioSmall: amortized(frequency) / sgd.total!,
    refreshOverSgd: refresh.total! / sgd.total!,
    tensorsHeld: tensors,
  };
}

const rows = values.model.split(',').map((m) => {
  const c = cases[m];
  if (c === undefined) throw new Error(`--model: expected resnet50 or light, found '${m}'`);
  return bench(c);
});

const s = (v: number) => v.toFixed(3).padStart(9);
console.log(
  `backend ${values.backend}, median of ${steps} steps after a warm-up; seconds per step (ratio to SGD)`,
);
console.log(
  `${'model'.padEnd(18)} ${'SGD'.padStart(9)} ${'THOR'.padStart(17)} ${'refresh'.padStart(17)} ${'f=834'.padStart(17)} ${`f=${frequency}`.padStart(17)}`,
);
for (const r of rows) {
  const w = (v: number) => `${s(v)} (${(v / r.sgd).toFixed(2)}×)`.padStart(17);
  console.log(
    `${`${r.model} ${r.batch}×${r.size}²`.padEnd(18)} ${s(r.sgd)} ${w(r.thorPlain)} ${w(r.thorRefresh)} ${w(r.thor834)} ${w(r.thorSmall)}`,
  );
  const p = r.refreshParts;
  console.log(
    `  refresh step: forward+backward with taps ${p['backward']!.toFixed(3)} s, factors ${p['factors']!.toFixed(3)} s, inverses ${p['inverses']!.toFixed(3)} s, precondition ${p['precondition']!.toFixed(3)} s, update ${p['update']!.toFixed(3)} s`,
  );
  console.log(
    `  goals: THOR at 834 ÷ SGD = ${r.ratio834.toFixed(3)} (≤ 1.15: ${r.ratio834 <= 1.15 ? 'met' : 'not met'}); refresh ÷ SGD = ${r.refreshOverSgd.toFixed(2)} (≤ 4: ${r.refreshOverSgd <= 4 ? 'met' : 'not met'})`,
  );
}
console.log(JSON.stringify({ bench: 'optim', backend: values.backend, steps, frequency, rows }));
