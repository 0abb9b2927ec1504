// npm run sweep [-- --lrs 0.05,0.1,0.2,0.4] [--wds 5e-4,2.5e-4,1e-3] [--train-per-class 250]
//                   [--tune-per-class 100] [--nproc 8]
//
// The tuning behind the reproduction's presets, the same for both optimizers: each base learning
// rate of the grid at the first weight decay, then the other weight decays at the best rate, at
// the reproduction's budgets (SGD 10 epochs, THOR 5), trained on part of the
// reproduction's training images and scored on a held-out part of them (the last images of each
// class), so the val split that the report scores never takes part in the choice. Writes
// sweep.md and sweep.json to --out and prints the best rate of each optimizer.
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { presets } from '@thor-ts/train';

import { fashionMnist, root, trainRun } from './runs.mjs';

const { values } = parseArgs({
  options: {
    lrs: { type: 'string', default: '0.05,0.1,0.2,0.4' },
    wds: { type: 'string', default: '5e-4,2.5e-4,1e-3' },
    'train-per-class': { type: 'string', default: '250' },
    'tune-per-class': { type: 'string', default: '100' },
    'sgd-epochs': { type: 'string', default: '10' },
    nproc: { type: 'string', default: '8' },
    limit: { type: 'string', default: '1000' },
    out: { type: 'string', default: join(root, 'reports', 'thor-vs-sgd') },
  },
});
const lrs = values.lrs.split(',').map(Number);
const wds = values.wds.split(',').map(Number);
const trainPerClass = Number(values['train-per-class']);
const tunePerClass = Number(values['tune-per-class']);
const limit = Number(values.limit);
const sgdEpochs = Number(values['sgd-epochs']);
const nproc = Number(values.nproc);
if (trainPerClass + tunePerClass > limit) {
  throw new Error(
    `--train-per-class ${trainPerClass} + --tune-per-class ${tunePerClass} must not exceed the ${limit} training images per class`,
  );
}
const source = await fashionMnist(limit);
const out = resolve(values.out);
const work = join(root, '.data', `fashion-mnist-tune-${trainPerClass}-${tunePerClass}`);

// train/ ← the first images of each class of the reproduction's train/; val/ ← its last ones.
await rm(work, { recursive: true, force: true });
for (const cls of (await readdir(join(source, 'train'))).sort()) {
  const files = (await readdir(join(source, 'train', cls))).sort();
  const parts = [
    ['train', files.slice(0, trainPerClass)],
    ['val', files.slice(files.length - tunePerClass)],
  ];
  for (const [split, chosen] of parts) {
    await mkdir(join(work, split, cls), { recursive: true });
    for (const f of chosen)
      await copyFile(join(source, 'train', cls, f), join(work, split, cls, f));
  }
}

// Runs already in --out's sweep.json (same splits) are not run again.
let rows = [];
try {
  const saved = JSON.parse(await readFile(join(out, 'sweep.json'), 'utf8'));
  if (saved.trainPerClass === trainPerClass && saved.tunePerClass === tunePerClass)
    rows = saved.rows;
} catch {
  // No earlier sweep.
}
const bestOf = (optimizer) =>
  rows.filter((r) => r.optimizer === optimizer).reduce((a, b) => (b.top1 > a.top1 ? b : a));

async function trial(optimizer, lr, weightDecay) {
  const epochs = optimizer === 'sgd' ? sgdEpochs : Math.max(1, Math.floor(sgdEpochs / 2));
  const done = rows.find(
    (r) =>
      r.optimizer === optimizer &&
      r.lr === lr &&
      r.weightDecay === weightDecay &&
      r.epochs === epochs,
  );
  if (done) return;
  console.log(
    `tuning ${optimizer.toUpperCase()}: lr ${lr}, weight decay ${weightDecay}, ${epochs} epochs`,
  );
  const runDir = join(work, 'runs', `${optimizer}-${lr}-${weightDecay}`);
  const base = presets[`fashion-mnist-${optimizer}`];
  const r = await trainRun({
    optimizer,
    nproc,
    runDir,
    configPath: join(runDir + '.json'),
    overrides: { data: work, epochs, lr: { ...base.lr, base: lr }, weightDecay },
  });
  const last = r.metrics[r.metrics.length - 1];
  rows.push({
    optimizer,
    lr,
    weightDecay,
    epochs,
    top1: last.top1,
    trainSeconds: last.trainSeconds,
  });
  console.log(`  held-out top-1 ${(last.top1 * 100).toFixed(2)}%`);
}

// The learning rate at the presets' weight decay, then the weight decay at the best rate.
for (const optimizer of ['sgd', 'thor']) {
  for (const lr of lrs) await trial(optimizer, lr, wds[0]);
  const lr = bestOf(optimizer).lr;
  for (const wd of wds.slice(1)) await trial(optimizer, lr, wd);
}
const best = { sgd: bestOf('sgd'), thor: bestOf('thor') };
const md = [
  '# The hyperparameter sweep behind the reproduction',
  '',
  `Command: \`npm run sweep\` (per optimizer: ${lrs.length} base learning rates at weight decay ` +
    `${wds[0]}, then weight decay ${wds.slice(1).join(' and ')} at the best rate; ${nproc} workers; one seed).`,
  `Trained on the first ${trainPerClass} training images of each class, scored on the last ` +
    `${tunePerClass} of each class (held out; the report's val split is not used), at the ` +
    `reproduction's budgets. Everything else is the presets' (cosine decay, momentum 0.9, ` +
    'label smoothing 0.1; THOR: its damping schedule, a refresh every 10 steps).',
  '',
  '| optimizer | base lr | weight decay | epochs | held-out top-1 |',
  '|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.optimizer.toUpperCase()} | ${r.lr} | ${r.weightDecay} | ${r.epochs} | ${(r.top1 * 100).toFixed(2)}%${best[r.optimizer] === r ? ' (best)' : ''} |`,
  ),
  '',
].join('\n');
await mkdir(out, { recursive: true });
await writeFile(join(out, 'sweep.md'), md);
await writeFile(
  join(out, 'sweep.json'),
  `${JSON.stringify({ trainPerClass, tunePerClass, rows }, null, 2)}\n`,
);
console.log(
  `sweep: ${join(out, 'sweep.md')}; best: SGD lr ${best.sgd.lr} wd ${best.sgd.weightDecay}, ` +
    `THOR lr ${best.thor.lr} wd ${best.thor.weightDecay}`,
);
