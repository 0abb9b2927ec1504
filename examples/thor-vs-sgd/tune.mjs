// npm run tune -w thor-vs-sgd [-- --train-per-class 5000 --tune-per-class 1000] [--nproc 8] [--out reports/thor-vs-sgd]
//
// Tunes both optimizers for the reproduction in ImageNet's regime by one protocol: each trains
// at its own budget (SGD 8 epochs, THOR 4) with the regime's augmentation on the first 5000
// training images of each class and is scored on the last 1000 (held out of training; the val
// split is never used). Stage by stage, each trial changes one setting of the best so far, and
// a stage's best is adopted when it beats the best before it:
//   the starting point; the base learning rate ×2 and ×0.5; the weight decay ×0.5 and ×2; label
//   smoothing switched (0 ↔ 0.1); then two trials of a setting of the optimizer's own (SGD:
//   Nesterov's momentum switched, momentum 0.95; THOR: damping ×0.5 and ×2).
// Eight trials each, SGD's and THOR's taken in turn. Writes tuning.json and tuning.md to --out
// after every trial; a second run skips the trials already in tuning.json, and a trial cut short
// continues from its checkpoint under runs/thor-vs-sgd/tune/.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { REPORTS, START, SGD_EPOCHS, TRAIN_PER_CLASS } from './regimes.mjs';
import { fashionMnist, heldOutFlags, resumableRun, root, savedRows, tuningSplit } from './runs.mjs';

const { trainPerClass, tunePerClass, nproc, out } = heldOutFlags(
  'tune',
  {},
  { trainPerClass: 5000, tunePerClass: 1000, out: REPORTS },
);
if (trainPerClass + tunePerClass > TRAIN_PER_CLASS) {
  throw new Error(
    `tune: expected --train-per-class + --tune-per-class ≤ ${TRAIN_PER_CLASS} (the training images a class), found ${trainPerClass + tunePerClass}`,
  );
}
const split = await tuningSplit(await fashionMnist(TRAIN_PER_CLASS), trainPerClass, tunePerClass, {
  keep: true,
});

const round = (x) => Number(x.toPrecision(3));
const lrTimes = (f) => (c) => ({ lr: { ...c.lr, base: round(c.lr.base * f) } });
const wdTimes = (f) => (c) => ({ weightDecay: round(c.weightDecay * f) });
const dampingTimes = (f) => (c) => ({
  thor: { ...c.thor, dampingBase: round(c.thor.dampingBase * f) },
});

/** The stages both optimizers go through: each a name and its trials, each a name and the fields it changes in the best so far. */
const SHARED = [
  [
    'learning rate',
    [
      ['lr ×2', lrTimes(2)],
      ['lr ×0.5', lrTimes(0.5)],
    ],
  ],
  [
    'weight decay',
    [
      ['weight decay ×0.5', wdTimes(0.5)],
      ['weight decay ×2', wdTimes(2)],
    ],
  ],
  [
    'label smoothing',
    [['label smoothing switched', (c) => ({ labelSmoothing: c.labelSmoothing > 0 ? 0 : 0.1 })]],
  ],
];
/** Each optimizer's stages: the shared ones, then two trials of a setting of its own. */
const STAGES = {
  sgd: [
    ...SHARED,
    [
      "SGD's own",
      [
        ["Nesterov's momentum switched", (c) => ({ nesterov: !(c.nesterov ?? false) })],
        ['momentum 0.95', () => ({ momentum: 0.95 })],
      ],
    ],
  ],
  thor: [
    ...SHARED,
    [
      "THOR's own",
      [
        ['damping ×0.5', dampingTimes(0.5)],
        ['damping ×2', dampingTimes(2)],
      ],
    ],
  ],
};

await mkdir(out, { recursive: true });
const jsonPath = join(out, 'tuning.json');
const rows = await savedRows(jsonPath, trainPerClass, tunePerClass);
const work = join(root, 'runs', 'thor-vs-sgd', 'tune');

/**
 * One optimizer's protocol as a generator: yields each trial to run ({ name, stage, changes })
 * and takes back its held-out top-1; returns the best changes.
 */
function* protocol(optimizer) {
  let best = { changes: {}, top1: yield { stage: 'start', name: 'starting point', changes: {} } };
  for (const [stage, trials] of STAGES[optimizer]) {
    let stageBest = best;
    for (const [name, change] of trials) {
      const changes = { ...best.changes, ...change({ ...START[optimizer], ...best.changes }) };
      const top1 = yield { stage, name, changes };
      if (top1 > stageBest.top1) stageBest = { changes, top1 };
    }
    best = stageBest;
  }
  return best;
}

/** Trains (or finds in tuning.json) one trial; returns its held-out top-1. */
async function trial(optimizer, index, t) {
  const saved = rows.find((r) => r.optimizer === optimizer && r.index === index);
  if (saved !== undefined && JSON.stringify(saved.changes) === JSON.stringify(t.changes)) {
    return saved.top1;
  }
  console.log(`tune: ${optimizer.toUpperCase()} trial ${index + 1}, ${t.name} (${t.stage})`);
  const { metrics } = await resumableRun({
    config: {
      ...START[optimizer],
      ...t.changes,
      evalsPerEpoch: 1,
      data: split,
      out: join(work, `${optimizer}-${index + 1}`),
    },
    nproc,
  });
  const last = metrics[metrics.length - 1];
  console.log(`  held-out top-1 ${(last.top1 * 100).toFixed(2)}%`);
  const row = {
    optimizer,
    index,
    stage: t.stage,
    name: t.name,
    changes: t.changes,
    top1: last.top1,
    trainTop1: last.trainTop1,
    trainLoss: last.trainLoss,
    trainSeconds: last.trainSeconds,
  };
  const at = rows.findIndex((r) => r.optimizer === optimizer && r.index === index);
  if (at >= 0) rows.splice(at, 1, row);
  else rows.push(row);
  return last.top1;
}

// SGD's and THOR's trials in turn, so that a stop leaves both equally far.
const runs = { sgd: protocol('sgd'), thor: protocol('thor') };
const state = { sgd: runs.sgd.next(), thor: runs.thor.next() };
const index = { sgd: 0, thor: 0 };
const best = {};
while (Object.values(state).some((s) => !s.done)) {
  for (const o of ['sgd', 'thor']) {
    if (state[o].done) continue;
    const top1 = await trial(o, index[o], state[o].value);
    index[o] += 1;
    state[o] = runs[o].next(top1);
    if (state[o].done) best[o] = state[o].value;
    await save(false);
  }
}
await save(true);
console.log(`tune: ${join(out, 'tuning.md')}`);

/** tuning.json (the rows, and each best once its protocol is done) and tuning.md. */
async function save(finished) {
  const json = {
    trainPerClass,
    tunePerClass,
    budgets: { sgd: SGD_EPOCHS, thor: SGD_EPOCHS / 2 },
    finished,
    rows,
    ...(finished ? { best } : {}),
  };
  await writeFile(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
  const pct = (v) => `${(v * 100).toFixed(2)}%`;
  const shown = (changes) =>
    Object.keys(changes).length === 0 ? '—' : `\`${JSON.stringify(changes)}\``;
  const table = (o) => [
    `| trial | stage | change | fields changed from the starting point | held-out top-1 | train top-1 | training time |`,
    '|---|---|---|---|---|---|---|',
    ...rows
      .filter((r) => r.optimizer === o)
      .sort((a, b) => a.index - b.index)
      .map(
        (r) =>
          `| ${r.index + 1} | ${r.stage} | ${r.name} | ${shown(r.changes)} | ${pct(r.top1)} | ${pct(r.trainTop1)} | ${r.trainSeconds.toFixed(0)} s |`,
      ),
  ];
  const md = [
    "# Tuning for the reproduction in ImageNet's regime",
    '',
    `Command: \`npm run tune -w thor-vs-sgd\`. Both optimizers by one protocol (tune.mjs): each at its own budget ` +
      `(SGD ${SGD_EPOCHS} epochs, THOR ${SGD_EPOCHS / 2}) with the regime's augmentation, trained on the first ` +
      `${trainPerClass} training images of each class and scored on the last ${tunePerClass} of them ` +
      '(held out; the val split is never used). Stage by stage, each trial changes one setting of the ' +
      "best so far; a stage's best is adopted when it beats the best before it. Training times " +
      'are wall-clock on a shared machine and not part of the score.',
    '',
    finished
      ? `**Finished.** SGD's best: ${shown(best.sgd.changes)} (${pct(best.sgd.top1)}); THOR's best: ${shown(best.thor.changes)} (${pct(best.thor.top1)}). \`npm run reproduce\` uses these.`
      : '**Not finished**: `npm run tune -w thor-vs-sgd` goes on where it stopped; `npm run reproduce` uses the starting points until it has.',
    '',
    '## SGD',
    '',
    ...table('sgd'),
    '',
    '## THOR',
    '',
    ...table('thor'),
    '',
  ].join('\n');
  await writeFile(join(out, 'tuning.md'), md);
}
