// npm run refresh-probe -w thor-vs-sgd [-- --frequencies 1,2,6] [--seeds 1,2,3] [--train-per-class 250]
//                          [--tune-per-class 100] [--nproc 8] [--out reports/thor-vs-sgd/small]
//
// Whether THOR's refresh interval holds it back: THOR's best of `npm run sweep -w thor-vs-sgd` trained for the
// reproduction's 5 epochs at each interval of --frequencies, on each seed, on the sweep's tuning
// split, and scored on its held-out images (the report's val split is not used), beside SGD's
// best of it for its 10 epochs on the same seeds. The intervals count steps of the tuning split (19
// an epoch): 2 refreshes as often as the reproduction's 10 do on its 78. Writes refresh-probe.md
// and refresh-probe.json to --out after every run; a second run of the same probe skips the runs
// already in refresh-probe.json.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  fashionMnist,
  firstRoundBest,
  heldOutFlags,
  heldOutRun,
  savedRows,
  stats,
  tuningSplit,
} from './runs.mjs';

const { integers, trainPerClass, tunePerClass, nproc, out } = heldOutFlags(
  'refresh-probe',
  {
    frequencies: { type: 'string', default: '1,2,6' },
    seeds: { type: 'string', default: '1,2,3' },
  },
  { trainPerClass: 250, tunePerClass: 100 },
);
const frequencies = integers('frequencies');
const seeds = integers('seeds');
const work = await tuningSplit(await fashionMnist(1000), trainPerClass, tunePerClass);
// The first round's best settings (sweep.json), at its batch of 128: the presets of that round.
const first = await firstRoundBest(out, 'refresh-probe');
const stepsPerEpoch = Math.floor((trainPerClass * 10) / first.thor.batchSize);

const jsonPath = join(out, 'refresh-probe.json');
const rows = await savedRows(jsonPath, trainPerClass, tunePerClass);

const plan = [
  ...seeds.map((seed) => ({ optimizer: 'sgd', frequency: null, seed })),
  ...frequencies.flatMap((frequency) =>
    seeds.map((seed) => ({ optimizer: 'thor', frequency, seed })),
  ),
];
for (const { optimizer, frequency, seed } of plan) {
  const same = (r) => r.optimizer === optimizer && r.frequency === frequency && r.seed === seed;
  if (rows.some(same)) continue;
  const settings = first[optimizer];
  const name = `${optimizer}${frequency === null ? '' : `-every-${frequency}`}-seed-${seed}`;
  console.log(`refresh probe: ${name}`);
  const runDir = join(work, 'probe', name);
  const figures = await heldOutRun({
    optimizer,
    nproc,
    runDir,
    overrides: {
      data: work,
      seed,
      ...settings,
      ...(frequency === null ? {} : { thor: { ...settings.thor, frequency } }),
    },
  });
  rows.push({ optimizer, frequency, seed, ...figures });
  await save();
}
await save();
console.log(`refresh probe: ${join(out, 'refresh-probe.md')}`);

async function save() {
  await mkdir(out, { recursive: true });
  await writeFile(
    jsonPath,
    `${JSON.stringify({ trainPerClass, tunePerClass, stepsPerEpoch, rows }, null, 2)}\n`,
  );
  await writeFile(join(out, 'refresh-probe.md'), markdown());
}

function markdown() {
  const groups = [
    { optimizer: 'sgd', frequency: null },
    ...frequencies.map((frequency) => ({ optimizer: 'thor', frequency })),
  ];
  const lines = groups.map(({ optimizer, frequency }) => {
    const mine = seeds
      .map((seed) =>
        rows.find((r) => r.optimizer === optimizer && r.frequency === frequency && r.seed === seed),
      )
      .filter((r) => r !== undefined);
    const { mean: top1, sd } = stats(mine.map((r) => r.top1 * 100));
    const { mean: seconds } = stats(mine.map((r) => r.trainSeconds));
    const interval =
      frequency === null
        ? '—'
        : `${frequency} (${(stepsPerEpoch / frequency).toFixed(1)} an epoch)`;
    return (
      `| ${optimizer.toUpperCase()} | ${mine[0]?.epochs ?? '—'} | ${interval} | ` +
      `${mine.map((r) => `${(r.top1 * 100).toFixed(1)}%`).join(' / ')} | ` +
      `${mine.length === 0 ? '—' : `${top1.toFixed(2)} ± ${sd.toFixed(2)}%`} | ` +
      `${mine.length === 0 ? '—' : `${seconds.toFixed(0)} s`} |`
    );
  });
  return [
    "# THOR's refresh interval on the held-out split",
    '',
    "Command: `npm run refresh-probe -w thor-vs-sgd`. Each optimizer's best of the first round of tuning " +
      '(sweep.json, batch 128), trained on the ' +
      `first ${trainPerClass} training images of each class and scored on the last ` +
      `${tunePerClass} (the sweep's tuning split; the val split is not used), seeds ` +
      `${seeds.join(', ')}, ${nproc} workers. THOR refreshes its factors and inverses every ` +
      `*n* steps of this split's ${stepsPerEpoch} an epoch; the reproduction's 10 steps on its 78 ` +
      `an epoch are as often as 2 here. One score's standard error is about ` +
      `${(100 * Math.sqrt((0.84 * 0.16) / (tunePerClass * 10))).toFixed(1)} points, a mean of ` +
      `${seeds.length} about ${(100 * Math.sqrt((0.84 * 0.16) / (tunePerClass * 10 * seeds.length))).toFixed(1)}.`,
    '',
    '| optimizer | epochs | refresh every n steps | held-out top-1 by seed | mean ± sd | training time, mean |',
    '|---|---|---|---|---|---|',
    ...lines,
    '',
  ].join('\n');
}
