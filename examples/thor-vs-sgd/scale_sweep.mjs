// npm run scale-sweep -w thor-vs-sgd [-- --batches 256,512] [--train-per-class 1000] [--tune-per-class 400]
//                        [--nproc 8] [--out reports/thor-vs-sgd/small]
//
// The second round of tuning, at the reproduction's own scale: `npm run sweep -w thor-vs-sgd` tunes on 250
// images per class (19 steps an epoch at batch 128), where THOR for 5 epochs and SGD for 10 come
// out even, while the reproduction trains on 1000 (78 steps an epoch). Here each optimizer starts
// from the first round's best (its preset then) and goes through the same stages, each trial changing
// one setting of the best trial so far: (1) that best as it is; (2) each batch of --batches, its
// base learning rate scaled linearly and by the square root (the two usual rules); (3) the
// learning rate again at ×0.7 and ×1.4; (4) a setting of its own at ×0.5 and ×2 (THOR: damping;
// SGD: weight decay). THOR's refresh interval keeps its refreshes an epoch as the batch grows.
// Trained on the reproduction's training images (the first --train-per-class of each class) and
// scored on the --tune-per-class training images after them (held out; the report's val split is
// not used). Writes scale-sweep.md and scale-sweep.json to --out after every trial; a second run
// goes on where the first stopped.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  fashionMnist,
  firstRoundBest,
  heldOutFlags,
  heldOutRun,
  savedRows,
  tuningSplit,
} from './runs.mjs';

const { integers, trainPerClass, tunePerClass, nproc, out } = heldOutFlags(
  'scale-sweep',
  { batches: { type: 'string', default: '256,512' } },
  { trainPerClass: 1000, tunePerClass: 400 },
);
const batches = integers('batches');
const work = await tuningSplit(
  await fashionMnist(trainPerClass + tunePerClass),
  trainPerClass,
  tunePerClass,
);

const stepsPerEpoch = (batch) => Math.floor((trainPerClass * 10) / batch);

const jsonPath = join(out, 'scale-sweep.json');
const rows = await savedRows(jsonPath, trainPerClass, tunePerClass);

const round = (x) => Number(x.toPrecision(3));
// Where this round starts: the first round's best (sweep.json), whatever the presets now hold.
const first = await firstRoundBest(out, 'scale-sweep');
/** THOR's refresh interval at `batch`: as many refreshes an epoch as its first-round runs. */
function frequencyAt(batch) {
  const { batchSize, thor } = first.thor;
  return Math.max(
    1,
    Math.round((thor.frequency * stepsPerEpoch(batch)) / stepsPerEpoch(batchSize)),
  );
}
/** A trial's settings: the first round's best, with these changed (batch, lr, weight decay, damping). */
const settingsOf = (optimizer, changes = {}) => {
  const c = first[optimizer];
  return {
    batchSize: c.batchSize,
    lr: c.lr.base,
    weightDecay: c.weightDecay,
    ...(optimizer === 'thor' ? { dampingBase: c.thor.dampingBase } : {}),
    ...changes,
  };
};
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function trial(stage, optimizer, settings) {
  let row = rows.find((r) => r.optimizer === optimizer && same(r.settings, settings));
  if (row === undefined) {
    const c = first[optimizer];
    const { batchSize, lr, weightDecay, dampingBase } = settings;
    const frequency = frequencyAt(batchSize);
    console.log(`scale-sweep ${optimizer.toUpperCase()} (${stage}): ${shown(settings)}`);
    const runDir = join(work, 'runs', `${optimizer}-${Object.values(settings).join('-')}`);
    const figures = await heldOutRun({
      optimizer,
      nproc,
      runDir,
      overrides: {
        ...c,
        data: work,
        batchSize,
        lr: { ...c.lr, base: lr },
        weightDecay,
        thor: {
          ...c.thor,
          ...(dampingBase === undefined ? {} : { dampingBase }),
          ...(optimizer === 'thor' ? { frequency } : {}),
        },
      },
    });
    row = { optimizer, settings, ...(optimizer === 'thor' ? { frequency } : {}), ...figures };
    rows.push(row);
  }
  if (!protocol.some((x) => x.row === row)) protocol.push({ stage, row });
  await save();
  return row;
}

const shown = (s) =>
  [
    `batch ${s.batchSize}`,
    `lr ${s.lr}`,
    `weight decay ${s.weightDecay}`,
    ...(s.dampingBase === undefined ? [] : [`damping ${s.dampingBase}`]),
  ].join(', ');

const better = (lead, row) => (lead === undefined || row.top1 > lead.top1 ? row : lead);
const best = {};
const protocol = [];
for (const optimizer of ['sgd', 'thor']) {
  let lead = await trial('first-round best', optimizer, settingsOf(optimizer));
  const base = lead.settings;
  for (const batchSize of batches) {
    const k = batchSize / base.batchSize;
    for (const [rule, f] of [
      ['linear', k],
      ['square root', Math.sqrt(k)],
    ]) {
      const settings = { ...base, batchSize, lr: round(base.lr * f) };
      lead = better(lead, await trial(`batch (${rule} lr)`, optimizer, settings));
    }
  }
  for (const f of [0.7, 1.4]) {
    const settings = { ...lead.settings, lr: round(lead.settings.lr * f) };
    lead = better(lead, await trial('lr again', optimizer, settings));
  }
  const own = optimizer === 'thor' ? 'dampingBase' : 'weightDecay';
  for (const f of [0.5, 2]) {
    const settings = { ...lead.settings, [own]: round(lead.settings[own] * f) };
    lead = better(lead, await trial('own', optimizer, settings));
  }
  best[optimizer] = lead;
}
await save();
console.log(
  `scale-sweep: ${join(out, 'scale-sweep.md')}; best: SGD ${shown(best.sgd.settings)}; ` +
    `THOR ${shown(best.thor.settings)}`,
);

async function save() {
  await mkdir(out, { recursive: true });
  // The protocol's rows flattened with their stage, as sweep.json holds its own.
  const json = {
    trainPerClass,
    tunePerClass,
    rows,
    ...(best.thor ? { best } : {}),
    protocol: protocol.map(({ stage, row }) => ({ stage, ...row })),
  };
  await writeFile(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
  await writeFile(join(out, 'scale-sweep.md'), markdown());
}

function markdown() {
  const se = 100 * Math.sqrt((0.89 * 0.11) / (tunePerClass * 10));
  const line = ({ stage, row: r }) =>
    `| ${r.optimizer.toUpperCase()} | ${stage} | ${r.settings.batchSize} | ${r.settings.lr} | ` +
    `${r.settings.weightDecay} | ${r.settings.dampingBase ?? '—'} | ${r.frequency ?? '—'} | ` +
    `${r.epochs} | ${r.trainSeconds.toFixed(0)} s | ${(r.top1 * 100).toFixed(2)}%` +
    `${best[r.optimizer] === r ? ' (best)' : ''} |`;
  return [
    "# The second round of tuning, at the reproduction's scale",
    '',
    'Command: `npm run scale-sweep -w thor-vs-sgd`. `npm run sweep -w thor-vs-sgd` tunes on 250 training images per class (19 ' +
      'steps an epoch at batch 128); the reproduction trains on 1000 (78). This round starts ' +
      "each optimizer from the first round's best and runs the same stages for " +
      'both, each trial changing one setting of the best trial so far (a trial replaces it only ' +
      `when it scores strictly higher): (1) that best; (2) batch ${batches.join(' and ')}, the ` +
      'base learning rate scaled linearly and by the square root of the batch; (3) the learning ' +
      'rate again at ×0.7 and ×1.4; (4) a setting of its own at ×0.5 and ×2 (THOR: the damping ' +
      "base; SGD: the weight decay). THOR's refresh interval keeps the reproduction's refreshes " +
      `an epoch (every ${first.thor.thor.frequency} steps at ${first.thor.batchSize}; ` +
      `${batches.map((b) => `${frequencyAt(b)} at ${b}`).join(', ')}). ` +
      `${nproc} workers, one seed, the reproduction's budgets (SGD 10 epochs, THOR 5).`,
    `Trained on the first ${trainPerClass} training images of each class (the reproduction's ` +
      `training set), scored on the next ${tunePerClass} of each class (held out; the report's ` +
      `val split is not used): one trial's score has a standard error of about ${se.toFixed(1)} ` +
      'points.',
    '',
    '| optimizer | stage | batch | base lr | weight decay | damping base | refresh every | epochs | training time | held-out top-1 |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...protocol.map(line),
    '',
  ].join('\n');
}
