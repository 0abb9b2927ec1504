// npm run reproduce -- --regime small [--quick] [--check] [--nproc 8] [--limit 1000]
//                   [--sgd-epochs 10] [--seed 1 | --seeds 1,2,3] [--thor '{"nesterov":true}']
//                   [--out reports/thor-vs-sgd/small]
//
// The small-data regime (the reproduction before the one in ImageNet's regime): prepares Fashion-MNIST as an ImageNet-layout tree (JPEGs, train/ and val/), trains the small
// ResNet with SGD for the full budget and with THOR for half of it, each data-parallel over
// --nproc workers on loopback, and writes report.md, plots (SVG and PNG) and the metrics to --out.
// Ends with the target's verdict: THOR reaches SGD's final top-1 in ≤ 0.55× its epochs and in
// less training time, met or not (--check makes an unmet target exit 1). --quick (a few hundred
// images, 2 + 1 epochs) checks the pipeline only, not the target. The full run writes to
// reports/thor-vs-sgd/small; --quick and any run with other settings to runs/thor-vs-sgd/ (git
// ignores it) unless --out says otherwise.
//
// --seeds repeats the whole comparison for each seed (both optimizers, each seed its own weights
// and data order): the first seed's runs and report go to --out as without it, each other
// seed's to --out/seed-<n>/, and report.md gains a table of every seed with the mean ± standard
// deviation, also written as seeds.json.
//
// --thor takes config fields (JSON) for THOR's runs on top of its preset, for checks outside the
// tuning protocol (the report says so): e.g. '{"nesterov":true}', a setting SGD adopted.
// --sgd-from <dir> takes each seed's SGD run from an earlier run of this command with the same
// seeds (<dir>, <dir>/seed-<n>) instead of training it again: runs are deterministic per seed.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { presets } from './presets.mjs';
import { fashionMnist, root, stats, trainRun } from './runs.mjs';
import { writeReport } from './small_report.mjs';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    check: { type: 'boolean', default: false },
    nproc: { type: 'string', default: '8' },
    limit: { type: 'string' },
    'sgd-epochs': { type: 'string' },
    out: { type: 'string' },
    data: { type: 'string' },
    seed: { type: 'string' },
    seeds: { type: 'string' },
    thor: { type: 'string' },
    'sgd-from': { type: 'string' },
  },
});
const thorOverrides = values.thor === undefined ? {} : JSON.parse(values.thor);
if (values.seed !== undefined && values.seeds !== undefined) {
  throw new Error('reproduce: expected --seed <n> or --seeds <n,m,…>, found both');
}
// undefined: the presets' seed.
const seeds = (values.seeds ?? values.seed)?.split(',').map(Number) ?? [undefined];
if (seeds.some((s) => s !== undefined && !Number.isInteger(s))) {
  throw new Error(
    `reproduce: --seed/--seeds expected integers, found '${values.seeds ?? values.seed}'`,
  );
}
const quick = values.quick;
const nproc = Number(values.nproc);
const limit = Number(values.limit ?? (quick ? 48 : 1000));
const sgdEpochs = Number(values['sgd-epochs'] ?? (quick ? 2 : 10));
const thorEpochs = Math.max(1, Math.floor(sgdEpochs / 2));
const data = await fashionMnist(limit, values.data);
// The committed study's folder, which only the full run at the presets' settings writes to.
const reports = join(root, 'reports', 'thor-vs-sgd', 'small');
const standard =
  !quick &&
  nproc === 8 &&
  values.limit === undefined &&
  values['sgd-epochs'] === undefined &&
  values.data === undefined &&
  values.thor === undefined &&
  values['sgd-from'] === undefined;
const out = resolve(
  values.out ??
    (standard
      ? reports
      : join(root, 'runs', 'thor-vs-sgd', quick ? 'small-quick' : 'small-custom')),
);
await mkdir(out, { recursive: true });

/** `name` (a sweep's JSON) from --out, else from the one behind the presets (the sweeps' --out). */
async function sweepFile(name) {
  for (const dir of [out, reports]) {
    try {
      return JSON.parse(await readFile(join(dir, name), 'utf8'));
    } catch {
      // Not there.
    }
  }
  return undefined;
}

/**
 * How the hyperparameters were chosen: the sweep in sweep.json (npm run sweep -w thor-vs-sgd), then the one at
 * the reproduction's scale in scale-sweep.json (npm run scale-sweep -w thor-vs-sgd), when they are there.
 */
async function tuning(sgdConfig, thorConfig) {
  const batch =
    sgdConfig.batchSize === thorConfig.batchSize ? ` at batch ${sgdConfig.batchSize}` : '';
  const rest =
    `Everything else is the same for both: flips only${batch} (the reference's small experiment ` +
    `in shared/reference/THOR.md); THOR refreshes its factors and inverses every ` +
    `${thorConfig.thor.frequency} steps, untuned.`;
  const sweep = await sweepFile('sweep.json');
  if (sweep === undefined) {
    return `no hyperparameter sweep was found in ${out} (npm run sweep -w thor-vs-sgd writes one). ${rest}`;
  }
  if (sweep.best?.sgd === undefined || sweep.best.thor === undefined) {
    return `the sweep in ${out} has not finished (npm run sweep -w thor-vs-sgd goes on where it stopped). ${rest}`;
  }
  const scale = await sweepFile('scale-sweep.json');
  const scaled = scale?.best?.sgd !== undefined && scale.best.thor !== undefined;
  const runs = { sgd: sgdConfig, thor: thorConfig };
  // Where each of the sweeps' settings lies in a config.
  const field = {
    batchSize: (c) => c.batchSize,
    lr: (c) => c.lr.base,
    weightDecay: (c) => c.weightDecay,
    nesterov: (c) => c.nesterov ?? false,
    momentum: (c) => c.momentum,
    warmupEpochs: (c) => c.lr.warmupEpochs ?? 0,
    schedule: (c) => c.lr.schedule,
    labelSmoothing: (c) => c.labelSmoothing,
    dampingBase: (c) => c.thor.dampingBase,
    dampingDecay: (c) => c.thor.dampingDecay,
  };
  const settings = (o) => {
    const b = sweep.best[o];
    return {
      lr: b.lr,
      weightDecay: b.weightDecay,
      ...(b.options ?? {}),
      ...(scaled ? scale.best[o].settings : {}),
    };
  };
  const names = { weightDecay: 'weight decay', batchSize: 'batch' };
  const shown = (s) =>
    Object.entries(s)
      .map(([k, v]) => `${names[k] ?? k} ${v}`)
      .join(', ');
  const used = (o) => {
    const differ = Object.entries(settings(o)).filter(([k, v]) => field[k](runs[o]) !== v);
    return differ.length === 0
      ? ''
      : ` (these runs used ${shown(Object.fromEntries(differ.map(([k]) => [k, field[k](runs[o])])))})`;
  };
  const trials = (s, o) => s.protocol.filter((r) => r.optimizer === o).length;
  return (
    `each optimizer's settings are the best of the same protocol (sweep.md: ` +
    `${trials(sweep, 'sgd')} trials for SGD, ${trials(sweep, 'thor')} for THOR, at these ` +
    `budgets, trained on ${sweep.trainPerClass} training images per class and scored on ` +
    `${sweep.tunePerClass} held-out training images per class, never on the val split: the base ` +
    'learning rate, the weight decay, the settings both have, the learning rate again, then two ' +
    "trials of a setting of the optimizer's own)" +
    (scaled
      ? `, then of a second round at the reproduction's scale (scale-sweep.md: ` +
        `${trials(scale, 'sgd')} trials for SGD, ${trials(scale, 'thor')} for THOR, trained on ` +
        `${scale.trainPerClass} training images per class and scored on ${scale.tunePerClass} ` +
        "held-out ones: the first round's best, two larger batches with the learning rate " +
        "scaled two ways, the learning rate again, then a setting of the optimizer's own)"
      : '') +
    `: SGD ${shown(settings('sgd'))}${used('sgd')}; THOR ${shown(settings('thor'))}${used('thor')}. ${rest}` +
    (values.thor === undefined
      ? ''
      : ` Outside the protocol, THOR's runs here also take ${values.thor} (\`--thor\`).`)
  );
}

/**
 * The preset's warm-up at another budget than the preset's (e.g. --quick): as the same share of
 * the epochs, the share the sweep tuned.
 */
function scaledWarmup(preset, epochs) {
  const w = preset.lr.warmupEpochs;
  if (w === undefined || epochs === preset.epochs) return {};
  return { lr: { ...preset.lr, warmupEpochs: (w * epochs) / preset.epochs } };
}

async function run(optimizer, epochs, seed, dir) {
  console.log(
    `training with ${optimizer.toUpperCase()} for ${epochs} epochs on ${nproc} workers` +
      (seed === undefined ? '' : ` (seed ${seed})`),
  );
  return trainRun({
    optimizer,
    nproc,
    runDir: join(dir, `run-${optimizer}`),
    configPath: join(dir, `config-${optimizer}.json`),
    overrides: {
      ...scaledWarmup(presets[`fashion-mnist-${optimizer}`], epochs),
      // --quick's 480 training images make only a few steps an epoch even at batch 128.
      ...(quick
        ? { batchSize: Math.min(128, presets[`fashion-mnist-${optimizer}`].batchSize) }
        : {}),
      ...(optimizer === 'thor' ? thorOverrides : {}),
      data,
      epochs,
      ...(seed === undefined ? {} : { seed }),
    },
  });
}

/** The SGD run of an earlier reproduction in `dir`, checked against this one's seed and budget. */
async function earlierSgd(seed, dir) {
  const config = JSON.parse(await readFile(join(dir, 'config-sgd.json'), 'utf8'));
  const expected = { ...presets['fashion-mnist-sgd'], data, epochs: sgdEpochs, seed: seed ?? 1 };
  for (const k of [
    'seed',
    'epochs',
    'batchSize',
    'lr',
    'momentum',
    'nesterov',
    'weightDecay',
    'labelSmoothing',
  ]) {
    if (JSON.stringify(config[k]) !== JSON.stringify(expected[k])) {
      throw new Error(
        `--sgd-from: ${join(dir, 'config-sgd.json')} has ${k} ${JSON.stringify(config[k])}, expected ${JSON.stringify(expected[k])}`,
      );
    }
  }
  console.log(`SGD (seed ${config.seed}): the run in ${dir}`);
  const metrics = (await readFile(join(dir, 'metrics-sgd.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  await writeFile(join(dirFor(seed), 'config-sgd.json'), JSON.stringify(config, null, 2));
  return { config, metrics, workers: nproc, launchSeconds: NaN };
}

const dirFor = (seed, base = out) => (seed === seeds[0] ? base : join(base, `seed-${seed}`));

/** Both runs of one seed and their report in `dir`. */
async function reproduce(seed, dir) {
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const sgd =
    values['sgd-from'] === undefined
      ? await run('sgd', sgdEpochs, seed, dir)
      : await earlierSgd(seed, dirFor(seed, resolve(values['sgd-from'])));
  const thor = await run('thor', thorEpochs, seed, dir);
  const c = await writeReport(dir, sgd, thor, await tuning(sgd.config, thor.config));
  console.log(`report: ${join(dir, 'report.md')}`);
  console.log(
    `seed ${sgd.config.seed}: SGD ${sgdEpochs} epochs: top-1 ${(c.target * 100).toFixed(2)}% in ${c.sgdSeconds.toFixed(0)} s; ` +
      (c.thorEpochs === undefined
        ? `THOR did not reach it in ${thorEpochs} epochs`
        : `THOR reached it at epoch ${c.thorEpochs} after ${c.thorSeconds.toFixed(0)} s`) +
      (quick ? '' : c.met ? ': target met' : ': target not met'),
  );
  return { seed: sgd.config.seed, sgd, thor, c, seconds: (performance.now() - t0) / 1e3 };
}

const results = [];
for (const seed of seeds) {
  results.push(await reproduce(seed, dirFor(seed)));
}
if (values.seeds !== undefined) await writeSeeds(out, results);

if (quick) {
  console.log('quick run: the pipeline works; the target is checked only by the full run');
} else if (results.some((r) => !r.c.met)) {
  const missed = results.filter((r) => !r.c.met).map((r) => r.seed);
  console.log(
    `target not met (seed ${missed.join(', ')} of ${results.map((r) => r.seed).join(', ')}): ` +
      "THOR did not reach SGD's final top-1 in ≤ 0.55× its epochs and less time",
  );
  if (values.check) process.exit(1);
} else {
  console.log(results.length > 1 ? `target met on every seed` : 'target met');
}

/**
 * seeds.json and a section of `out`/report.md: each seed's figures, their mean ± standard
 * deviation (n − 1), and whether the target holds on each.
 */
async function writeSeeds(out, results) {
  const last = (r) => r.metrics[r.metrics.length - 1];
  const rows = results.map(({ seed, thor, c, seconds }) => {
    const hit = thor.metrics.find((m) => m.epoch === c.thorEpochs);
    return {
      seed,
      sgdTop1: c.target,
      sgdEpochs: c.sgdEpochs,
      sgdSeconds: c.sgdSeconds,
      thorTop1: last(thor).top1,
      thorEpochs: thor.config.epochs,
      thorSeconds: last(thor).trainSeconds,
      thorEpochsToTarget: c.thorEpochs ?? null,
      thorTop1AtTarget: hit?.top1 ?? null,
      thorSecondsToTarget: c.thorSeconds ?? null,
      met: c.met,
      commandSeconds: seconds,
    };
  });
  await writeFile(join(out, 'seeds.json'), `${JSON.stringify(rows, null, 2)}\n`);
  const pct = (v) => `${(v * 100).toFixed(2)}%`;
  const pm = (xs, f) => {
    const { mean, sd } = stats(xs);
    return `${f(mean)} ± ${f(sd)}`;
  };
  const points = (v) => `${(v * 100).toFixed(2)}`;
  const secs = (v) => `${v.toFixed(0)} s`;
  const met = rows.filter((r) => r.met).length;
  const md = [
    `## Every seed (${rows.length})`,
    '',
    `Command: \`npm run reproduce -- --regime small --seeds ${rows.map((r) => r.seed).join(',')}` +
      `${values.thor === undefined ? '' : ` --thor '${values.thor}'`}` +
      `${values['sgd-from'] === undefined ? '' : ` --sgd-from ${relative(root, resolve(values['sgd-from']))}`}` +
      `${values.out === undefined ? '' : ` --out ${relative(root, out)}`}\`. Each seed ` +
      'sets the initial weights, the data order and the flips of both runs; the first ' +
      "seed's runs are the ones above, the others' lie in `seed-<n>/` (each with its own " +
      'report.md and plots). Training times are wall-clock, evaluation excluded.',
    '',
    `| seed | SGD top-1 after ${rows[0].sgdEpochs} | THOR top-1 after ${rows[0].thorEpochs} | THOR − SGD | THOR epochs to SGD's top-1 (top-1 there) | SGD training time | THOR training time to it | target |`,
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.seed} | ${pct(r.sgdTop1)} | ${pct(r.thorTop1)} | ${((r.thorTop1 - r.sgdTop1) * 100).toFixed(2)} points | ` +
        (r.thorEpochsToTarget === null
          ? 'not reached | '
          : `${r.thorEpochsToTarget} (${pct(r.thorTop1AtTarget)}) | `) +
        `${secs(r.sgdSeconds)} | ${r.thorSecondsToTarget === null ? `— (${secs(r.thorSeconds)} for all ${r.thorEpochs})` : secs(r.thorSecondsToTarget)} | ${r.met ? 'met' : '**not met**'} |`,
    ),
    `| mean ± sd | ${pm(
      rows.map((r) => r.sgdTop1),
      points,
    )} | ${pm(
      rows.map((r) => r.thorTop1),
      points,
    )} | ` +
      `${pm(
        rows.map((r) => r.thorTop1 - r.sgdTop1),
        points,
      )} points | | ` +
      `${pm(
        rows.map((r) => r.sgdSeconds),
        secs,
      )} | ${pm(
        rows.map((r) => r.thorSeconds),
        secs,
      )} for all ${rows[0].thorEpochs} | ${met} of ${rows.length} |`,
    '',
    met === rows.length
      ? `The target holds on every seed (${met} of ${rows.length}).`
      : `The target holds on ${met} of ${rows.length} seeds: **not robustly reproduced** (missed on seed ${rows
          .filter((r) => !r.met)
          .map((r) => r.seed)
          .join(', ')}).`,
    (values['sgd-from'] === undefined
      ? ''
      : `SGD's runs and times are those of the reproduction in \`${relative(out, resolve(values['sgd-from'])) || '.'}\` (the same seeds and settings; not trained again). `) +
      `All seeds together took ${(results.reduce((a, r) => a + r.seconds, 0) / 60).toFixed(1)} minutes (runs, start-ups, evaluations and reports; data preparation excluded).`,
    '',
    '',
  ].join('\n');
  const report = join(out, 'report.md');
  const text = await readFile(report, 'utf8');
  await writeFile(report, text.replace('## Hyperparameters', `${md}## Hyperparameters`));
}
