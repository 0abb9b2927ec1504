// npm run reproduce [-- --seeds 1,2,3 | --seed 1] [--quick] [--check] [--nproc 2] [--out <dir>]
//                   [--regime imagenet|small]
//
// THOR for half the epochs against SGD for all of them, in ImageNet's regime (the default): all
// 60,000 Fashion-MNIST training images, RandomResizedCrop + flip at 28² for both, a ResNet-8 that
// underfits them; SGD also runs for THOR's half budget. Each seed's three runs go to
// seed-<n>/{sgd,sgd-half,thor}/ under --out; a run already there with the same settings is
// skipped and one cut short resumes, so the command goes on where it stopped. After every seed
// it writes report.md, results.json and plots, and prints its verdict on the reference's two
// criteria (time to SGD's target, final gap) and the earlier one (THOR reaches SGD's final). It
// exits 0 whether they are met or not; --check makes an unmet criterion exit 1.
//
// Every run is data-parallel over the study's 8 ranks of 16 images (runs.mjs's RANKS), on --nproc
// processes (default: one per core, as many as divide 8), each training 8 / nproc ranks' micro-
// batches in turn.
//
// --out defaults to reports/thor-vs-sgd (the committed study) for the full run; --quick (a few
// hundred images, 2 + 1 epochs, about a minute) and any other run (--data) write under
// runs/thor-vs-sgd/, which git ignores. --regime small runs the earlier small-data reproduction
// (reproduce_small.mjs; its flags as there).
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { formatDuration } from '@thor-ts/train';

import { judge } from './criteria.mjs';
import { REPORTS, settings, TRAIN_PER_CLASS } from './regimes.mjs';
import { writeStudyReport } from './report.mjs';
import {
  asRanks,
  defaultProcesses,
  epochsLeft,
  fashionMnist,
  integerList,
  RANKS,
  resumableRun,
  root,
} from './runs.mjs';

const regime = process.argv.includes('--regime')
  ? process.argv[process.argv.indexOf('--regime') + 1]
  : 'imagenet';
if (regime === 'small') {
  const args = process.argv
    .slice(2)
    .filter((a, i, all) => a !== '--regime' && all[i - 1] !== '--regime');
  const child = spawn(
    process.execPath,
    [join(import.meta.dirname, 'reproduce_small.mjs'), ...args],
    {
      stdio: 'inherit',
    },
  );
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal === 'SIGINT' ? 2 : 15)));
} else if (regime !== 'imagenet') {
  console.error(`reproduce: --regime expected 'imagenet' or 'small', found '${regime}'`);
  process.exit(2);
} else {
  await main();
}

async function main() {
  const { values } = parseArgs({
    options: {
      regime: { type: 'string' },
      quick: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      nproc: { type: 'string', default: String(defaultProcesses()) },
      seed: { type: 'string' },
      seeds: { type: 'string' },
      out: { type: 'string' },
      data: { type: 'string' },
    },
  });
  if (values.seed !== undefined && values.seeds !== undefined) {
    throw new Error('reproduce: expected --seed <n> or --seeds <n,m,…>, found both');
  }
  const seeds = integerList({ seeds: values.seeds ?? values.seed ?? '1' }, 'seeds', 'reproduce');
  const nproc = integerList(values, 'nproc', 'reproduce')[0];
  const quick = values.quick;
  const standard = !quick && values.data === undefined;
  const out = resolve(
    values.out ??
      (standard ? REPORTS : join(root, 'runs', 'thor-vs-sgd', quick ? 'quick' : 'custom')),
  );
  const perClass = quick ? 48 : TRAIN_PER_CLASS;
  const data = await fashionMnist(perClass, values.data);
  const chosen = await settings();
  // --quick: the same pipeline on 480 training images, 2 + 1 epochs at a batch that gives steps.
  const shrink = (c, epochs) =>
    quick ? { ...c, epochs, batchSize: Math.min(c.batchSize, 48), evalsPerEpoch: 2 } : c;
  const plan = seeds.flatMap((seed) => {
    const sgd = shrink(chosen.sgd, 2);
    const thor = shrink(chosen.thor, 1);
    const half = Math.max(1, Math.floor(sgd.epochs / 2));
    return [
      { seed, name: 'sgd', config: sgd },
      { seed, name: 'sgd-half', config: { ...sgd, epochs: half } },
      { seed, name: 'thor', config: thor },
    ].map((r) => ({
      ...r,
      config: asRanks(
        { ...r.config, data, seed, out: join(out, `seed-${seed}`, r.name) },
        nproc,
        'reproduce',
      ),
    }));
  });
  await mkdir(out, { recursive: true });

  // Seconds an epoch takes, with its evaluations, by optimizer: measured as runs finish, guessed
  // before (SGD at ~900 img/s on this 2-core machine, THOR's refreshes ~1.6× that).
  const images = perClass * 10;
  const perEpoch = { sgd: images / 900 + 20, thor: (images / 900) * 1.6 + 20 };
  // Runs done before (and epochs done of one cut short) count for nothing.
  const epochs = await Promise.all(plan.map((r) => epochsLeft(r.config, nproc)));
  const left = (from) =>
    plan.slice(from).reduce((s, r, j) => s + perEpoch[r.config.optimizer] * epochs[from + j], 0);

  const done = new Map();
  const t0 = performance.now();
  for (const [i, r] of plan.entries()) {
    console.log(
      `seed ${r.seed}: ${r.name} (${r.config.optimizer.toUpperCase()} for ${r.config.epochs} epochs on ${nproc} processes × ${RANKS / nproc} micro-batches)` +
        ` — run ${i + 1} of ${plan.length}, about ${formatDuration(left(i))} left in all`,
    );
    const started = performance.now();
    const result = await resumableRun({ config: r.config, nproc, afterSeconds: left(i + 1) });
    if (result.trained) {
      perEpoch[r.config.optimizer] = (performance.now() - started) / 1e3 / epochs[i];
    } else {
      console.log(`  done before: ${r.config.out}`);
    }
    done.set(`${r.seed}/${r.name}`, result);
    // Each finished seed but the last updates the report: partial results as they come.
    if (r.name === 'thor' && i < plan.length - 1) await report();
  }
  console.log(`all runs: ${formatDuration((performance.now() - t0) / 1e3)}`);
  const verdict = await report();
  if (values.check && !(verdict.timeToTarget.met === verdict.timeToTarget.of && verdict.gap.met)) {
    process.exit(1);
  }

  /** The report over every seed whose three runs are done; prints the verdict. */
  async function report() {
    const finished = seeds
      .filter((s) => ['sgd', 'sgd-half', 'thor'].every((n) => done.has(`${s}/${n}`)))
      .map((seed) => ({
        seed,
        sgd: done.get(`${seed}/sgd`),
        sgdHalf: done.get(`${seed}/sgd-half`),
        thor: done.get(`${seed}/thor`),
      }));
    const verdict = judge(
      finished.map((f) => ({
        seed: f.seed,
        sgd: f.sgd.metrics,
        sgdHalf: f.sgdHalf.metrics,
        thor: f.thor.metrics,
      })),
    );
    await writeStudyReport(out, { runs: finished, verdict, chosen, quick, seedsPlanned: seeds });
    printVerdict(verdict);
    console.log(`report: ${join(out, 'report.md')}`);
    return verdict;
  }
}

function printVerdict(v) {
  const pct = (x) => `${(x * 100).toFixed(2)}%`;
  const reached = (r) =>
    r === undefined ? 'never' : `${Number(r.epoch.toFixed(2))} epochs (${r.seconds.toFixed(0)} s)`;
  const n = v.rows.length;
  console.log(
    `time to target (SGD's val top-1 at epoch ${v.targetEpoch}, ${n > 1 ? 'mean of the seeds' : 'one seed'}: ${pct(v.target)}): ` +
      v.rows
        .map(
          (r) => `seed ${r.seed}: SGD ${reached(r.sgdToTarget)}, THOR ${reached(r.thorToTarget)}`,
        )
        .join('; ') +
      ` — met on ${v.timeToTarget.met} of ${v.timeToTarget.of}`,
  );
  console.log(
    `final gap (THOR after half the epochs − SGD after all): ${(v.gap.mean * 100).toFixed(2)} ± ${(v.gap.sd * 100).toFixed(2)} points — ${v.gap.met ? 'met' : 'not met'}`,
  );
  console.log(
    `THOR reaches SGD's final top-1 in ≤ 0.55× its epochs and less time: met on ${v.reachesFinal.met} of ${v.reachesFinal.of}`,
  );
}
