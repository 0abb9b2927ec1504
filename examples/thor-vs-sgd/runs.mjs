// What reproduce.mjs and sweep.mjs share: the Fashion-MNIST tree and one training run.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

import { launch } from '@thor-ts/distributed';
import { readMetrics, validateConfig } from '@thor-ts/train';

import { presets } from './presets.mjs';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The study's data-parallel ranks: the reference's 8 accelerators, each with its share of a batch
 * (16 of 128 here). A run on fewer processes trains each process's ranks as micro-batches in turn
 * (`accumulate`): the same gradients and THOR factors as 8 processes, batch norm over 16 images
 * each; only batch norm's running statistics differ, each micro-batch updating them in turn as
 * PyTorch's gradient accumulation does.
 */
export const RANKS = 8;

/** The processes a study runs on by default: one per core, as many as divide RANKS. */
export function defaultProcesses(cores = availableParallelism()) {
  let n = Math.max(1, Math.min(cores, RANKS));
  while (RANKS % n !== 0) n -= 1;
  return n;
}

/**
 * `config` as `nproc` processes train the study's RANKS ranks: each accumulates RANKS / nproc
 * micro-batches (times what `config` already accumulates). `command` names the error's source.
 */
export function asRanks(config, nproc, command) {
  if (!Number.isInteger(nproc) || nproc < 1 || RANKS % nproc !== 0) {
    throw new Error(
      `${command}: --nproc expected a divisor of ${RANKS} (the study's ranks; each process trains ${RANKS} / nproc of them in turn), found ${nproc}`,
    );
  }
  const accumulate = (config.accumulate ?? 1) * (RANKS / nproc);
  return accumulate === 1 ? config : { ...config, accumulate };
}

/**
 * `.data/fashion-mnist-<limit>` (or `data`), prepared unless it is there. Returns its path. The tree
 * is written beside it and renamed into place, so a run started meanwhile (a concurrent test, a
 * second study) never reads a half-written tree: whichever finishes first is kept.
 */
export async function fashionMnist(limit, data = join(root, '.data', `fashion-mnist-${limit}`)) {
  if (!existsSync(join(data, 'train'))) {
    console.log(`preparing Fashion-MNIST (${limit} images per class and split) in ${data}`);
    const cli = fileURLToPath(import.meta.resolve('@thor-ts/data/cli'));
    const partial = `${data}.partial-${process.pid}`;
    await rm(partial, { recursive: true, force: true });
    const args = ['prepare', 'fashion-mnist', '--out', partial, '--limit', String(limit)];
    await promisify(execFile)(process.execPath, [cli, ...args]);
    try {
      await rename(partial, data);
    } catch (error) {
      if (!existsSync(join(data, 'train'))) throw error;
      await rm(partial, { recursive: true, force: true });
    }
  }
  return data;
}

/**
 * The tuning split of a prepared tree (`source`), made afresh in
 * `.data/fashion-mnist-tune-<train>-<tune>`: train/ ← the first `trainPerClass` images of each
 * class of its train/, val/ ← the last `tunePerClass` (held out; `source`'s val/ is not used).
 * With `keep`, a split already made there from the same source is used as it is. Returns its path.
 */
export async function tuningSplit(source, trainPerClass, tunePerClass, { keep = false } = {}) {
  const work = join(root, '.data', `fashion-mnist-tune-${trainPerClass}-${tunePerClass}`);
  const made = join(work, 'split.json');
  const mark = JSON.stringify({ source: resolve(source), trainPerClass, tunePerClass });
  if (keep && (await readFile(made, 'utf8').catch(() => '')) === mark) return work;
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
  await writeFile(made, mark);
  return work;
}

/**
 * Trains the `fashion-mnist-<optimizer>` preset (with `overrides`) from scratch in `runDir` on
 * `nproc` local workers; writes its config to `configPath`. Returns what the report needs.
 */
export async function trainRun({ optimizer, nproc, runDir, configPath, overrides }) {
  await rm(runDir, { recursive: true, force: true });
  await mkdir(dirname(configPath), { recursive: true });
  const config = validateConfig({
    ...presets[`fashion-mnist-${optimizer}`],
    ...overrides,
    out: runDir,
  });
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const t0 = performance.now();
  const code = await launch({
    nproc,
    command: process.execPath,
    args: [fileURLToPath(import.meta.resolve('@thor-ts/train/worker')), configPath],
  });
  if (code !== 0) {
    throw new Error(
      `the ${optimizer} run in ${runDir} failed (exit code ${code}); its workers' output is above`,
    );
  }
  return {
    config,
    metrics: await readMetrics(runDir),
    workers: nproc,
    launchSeconds: (performance.now() - t0) / 1e3,
  };
}

/**
 * One run of a held-out script: `trainRun` of `optimizer` with `overrides` in `runDir` (its config
 * in `${runDir}.json`), its score printed. Returns its last epoch's figures: epochs, held-out
 * top-1, training loss and training seconds.
 */
export async function heldOutRun({ optimizer, nproc, runDir, overrides }) {
  const r = await trainRun({ optimizer, nproc, runDir, configPath: `${runDir}.json`, overrides });
  const last = r.metrics[r.metrics.length - 1];
  console.log(`  held-out top-1 ${(last.top1 * 100).toFixed(2)}%`);
  return {
    epochs: last.epoch,
    top1: last.top1,
    trainLoss: last.trainLoss,
    trainSeconds: last.trainSeconds,
  };
}

/** The mean and sample standard deviation of `xs` (0 for a single value). */
export function stats(xs) {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd =
    xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd };
}

/**
 * Where every trial of `npm run sweep -w thor-vs-sgd` (the first round of tuning) starts: the presets as they
 * were before any tuning (the reference's small experiment, batch 128), whatever the presets now
 * hold. A trial's options are changes to these.
 */
export const START = {
  nesterov: false,
  momentum: 0.9,
  warmupEpochs: 0,
  labelSmoothing: 0.1,
  dampingBase: 0.03,
  dampingDecay: 0.87,
  schedule: 'cosine',
};

/**
 * The config fields of a first-round trial (or of its best, `sweep.json`'s `best`): `preset` at
 * batch 128 with this base learning rate, weight decay and options (START's keys) on START.
 */
export function firstRound(preset, { lr, weightDecay, options = {} }) {
  const { nesterov, momentum, warmupEpochs, labelSmoothing, dampingBase, dampingDecay, schedule } =
    { ...START, ...options };
  return {
    batchSize: 128,
    lr: { ...preset.lr, base: lr, warmupEpochs, schedule },
    weightDecay,
    nesterov,
    momentum,
    labelSmoothing,
    thor: { ...preset.thor, dampingBase, dampingDecay },
  };
}

/**
 * The command line of a script that trains on part of the training images and scores on a
 * held-out part: its own `options` (parseArgs's) and the flags they all take, `--train-per-class`
 * and `--tune-per-class` (defaults `split`), `--nproc` (8) and `--out` (`split.out`, else the small
 * regime's reports/thor-vs-sgd/small).
 * Returns parseArgs's values, those flags checked, and `integers(flag)` for a flag of integer
 * lists; `command` names the errors' source.
 */
export function heldOutFlags(command, options, split) {
  const { values } = parseArgs({
    options: {
      ...options,
      'train-per-class': { type: 'string', default: String(split.trainPerClass) },
      'tune-per-class': { type: 'string', default: String(split.tunePerClass) },
      nproc: { type: 'string', default: '8' },
      out: { type: 'string', default: split.out ?? join(root, 'reports', 'thor-vs-sgd', 'small') },
    },
  });
  const integers = (flag) => integerList(values, flag, command);
  return {
    values,
    integers,
    trainPerClass: integers('train-per-class')[0],
    tunePerClass: integers('tune-per-class')[0],
    nproc: integers('nproc')[0],
    out: resolve(values.out),
  };
}

/** `values[flag]` (parseArgs's) as a comma-separated list of integers ≥ 1; `command` names the error's source. */
export function integerList(values, flag, command) {
  const xs = values[flag].split(',').map(Number);
  if (xs.some((x) => !Number.isInteger(x) || x < 1)) {
    throw new Error(`${command}: --${flag} expected integers ≥ 1, found '${values[flag]}'`);
  }
  return xs;
}

/** The rows of an earlier run's JSON at `path` made on the same split, else none. */
export async function savedRows(path, trainPerClass, tunePerClass) {
  try {
    const saved = JSON.parse(await readFile(path, 'utf8'));
    if (saved.trainPerClass === trainPerClass && saved.tunePerClass === tunePerClass)
      return saved.rows;
  } catch {
    // No earlier run.
  }
  return [];
}

/**
 * Each optimizer's first-round best as config fields (`firstRound` of its preset), from the
 * finished `npm run sweep -w thor-vs-sgd` whose sweep.json lies in `dir`; `command` names the error's source.
 */
export async function firstRoundBest(dir, command) {
  const path = join(dir, 'sweep.json');
  const best = await readFile(path, 'utf8').then(
    (t) => JSON.parse(t).best,
    () => undefined,
  );
  if (best?.sgd === undefined || best.thor === undefined) {
    throw new Error(
      `${command}: expected a finished first-round sweep in ${path} (npm run sweep -w thor-vs-sgd writes it)`,
    );
  }
  return {
    sgd: firstRound(presets['fashion-mnist-sgd'], best.sgd),
    thor: firstRound(presets['fashion-mnist-thor'], best.thor),
  };
}

/**
 * A config as two runs of it compare: the dataset by its folder's name, the output folder not at
 * all (whole paths differ between machines).
 */
function comparable(config) {
  return JSON.stringify({ ...config, data: basename(config.data), out: undefined });
}

/**
 * Epochs `config`'s run still has to train: all of them unless its folder (`config.out`) holds a
 * run of these settings, whose metrics count the epochs done. 0 for a finished run.
 */
export async function epochsLeft(config, nproc) {
  const want = { ...validateConfig(config), workers: nproc };
  const saved = await readFile(join(config.out, 'config.json'), 'utf8').then(
    JSON.parse,
    () => undefined,
  );
  if (saved === undefined || comparable(saved) !== comparable(want)) return config.epochs;
  const done = await readMetrics(config.out).catch(() => []);
  return config.epochs - Math.floor(done.at(-1)?.epoch ?? 0);
}

/**
 * One run of a study that may stop at any moment: `config` (validated, its `out` the run's
 * folder) on `nproc` local workers. A run whose folder holds a config.json like this one and a
 * metrics line for every epoch is done and not trained again; one cut short continues from its
 * last.ckpt (the trainer resumes); a folder of another config is cleared first. `afterSeconds`,
 * the study's work after this run, goes to the workers' progress line as the whole ETA.
 * Returns the run's config and metrics, and whether it was trained now.
 */
export async function resumableRun({ config, nproc, afterSeconds }) {
  const dir = config.out;
  const want = { ...validateConfig(config), workers: nproc };
  const saved = await readFile(join(dir, 'config.json'), 'utf8').then(JSON.parse, () => undefined);
  if (saved !== undefined && comparable(saved) !== comparable(want)) {
    console.log(`${dir} holds a run of other settings: training it again`);
    await rm(dir, { recursive: true, force: true });
  }
  const done = await readMetrics(dir).catch(() => []);
  if (saved !== undefined && done.at(-1)?.epoch === config.epochs) {
    return { config: want, metrics: done, trained: false };
  }
  await mkdir(dir, { recursive: true });
  const configPath = join(dir, 'run.json');
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  // The workers inherit this process's environment.
  if (afterSeconds === undefined) delete process.env.THOR_TS_ETA_AFTER;
  else process.env.THOR_TS_ETA_AFTER = String(Math.round(afterSeconds));
  const code = await launch({
    nproc,
    command: process.execPath,
    args: [fileURLToPath(import.meta.resolve('@thor-ts/train/worker')), configPath],
  });
  delete process.env.THOR_TS_ETA_AFTER;
  if (code !== 0) {
    throw new Error(
      `the ${config.optimizer} run in ${dir} failed (exit code ${code}); its workers' output is above`,
    );
  }
  return { config: want, metrics: await readMetrics(dir), trained: true };
}
