// npm run reproduce [-- --quick] [--nproc 8] [--limit 1000] [--sgd-epochs 10] [--out reports/thor-vs-sgd]
//
// Prepares Fashion-MNIST as an ImageNet-layout tree (JPEGs, train/ and val/), trains the small
// ResNet with SGD for the full budget and with THOR for half of it, each data-parallel over
// --nproc workers on loopback, and writes report.md, plots (SVG and PNG) and the metrics to --out.
// Ends with the target's check: THOR reaches SGD's final top-1 in ≤ 0.55× its epochs and in less
// training time, or the command fails. --quick (a few hundred images, 2 + 1 epochs) checks the
// pipeline only, not the target.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

import { launch } from '@thor-ts/distributed';
import { presets, readMetrics, validateConfig, writeReport } from '@thor-ts/train';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    nproc: { type: 'string', default: '8' },
    limit: { type: 'string' },
    'sgd-epochs': { type: 'string' },
    out: { type: 'string', default: join(root, 'reports', 'thor-vs-sgd') },
    data: { type: 'string' },
  },
});
const quick = values.quick;
const nproc = Number(values.nproc);
const limit = Number(values.limit ?? (quick ? 48 : 1000));
const sgdEpochs = Number(values['sgd-epochs'] ?? (quick ? 2 : 10));
const thorEpochs = Math.max(1, Math.floor(sgdEpochs / 2));
const data = values.data ?? join(root, '.data', `fashion-mnist-${limit}`);
const out = resolve(values.out);
const packageDir = (name) => dirname(fileURLToPath(import.meta.resolve(name)));

if (!existsSync(join(data, 'train'))) {
  console.log(`preparing Fashion-MNIST (${limit} images per class and split) in ${data}`);
  const cli = join(packageDir('@thor-ts/data'), 'cli.js');
  await promisify(execFile)(process.execPath, [
    cli,
    'prepare',
    'fashion-mnist',
    '--out',
    data,
    '--limit',
    String(limit),
  ]);
}
await mkdir(out, { recursive: true });

async function run(optimizer, epochs) {
  const runDir = join(out, `run-${optimizer}`);
  await rm(runDir, { recursive: true, force: true });
  const config = validateConfig({
    ...presets[`fashion-mnist-${optimizer}`],
    data,
    out: runDir,
    epochs,
  });
  const configPath = join(out, `config-${optimizer}.json`);
  await writeFile(configPath, JSON.stringify(config, null, 2));
  console.log(`training with ${optimizer.toUpperCase()} for ${epochs} epochs on ${nproc} workers`);
  const t0 = performance.now();
  const code = await launch({
    nproc,
    command: process.execPath,
    args: [join(packageDir('@thor-ts/train'), 'worker_main.js'), configPath],
  });
  if (code !== 0)
    throw new Error(
      `the ${optimizer} run failed (exit code ${code}); its workers' output is above`,
    );
  return {
    config,
    metrics: await readMetrics(runDir),
    workers: nproc,
    launchSeconds: (performance.now() - t0) / 1e3,
  };
}

const sgd = await run('sgd', sgdEpochs);
const thor = await run('thor', thorEpochs);
const tuning =
  'both optimizers use the same settings as the reference experiment in shared/reference/THOR.md ' +
  '(batch 128, lr 0.1 with cosine decay, momentum 0.9, weight decay 5e-4, label smoothing 0.1, flips), ' +
  'with THOR adding its damping schedule and a refresh every 10 steps; no per-optimizer search was run.';
const c = await writeReport(out, sgd, thor, tuning);
console.log(`report: ${join(out, 'report.md')}`);
console.log(
  `SGD ${sgdEpochs} epochs: top-1 ${(c.target * 100).toFixed(2)}% in ${c.sgdSeconds.toFixed(0)} s; ` +
    (c.thorEpochs === undefined
      ? `THOR did not reach it in ${thorEpochs} epochs`
      : `THOR reached it at epoch ${c.thorEpochs} after ${c.thorSeconds.toFixed(0)} s`),
);
if (quick) {
  console.log('quick run: the pipeline works; the target is checked only by the full run');
} else if (!c.met) {
  console.error(
    "target not met: THOR did not reach SGD's final top-1 in ≤ 0.55× its epochs and less time",
  );
  process.exit(1);
} else {
  console.log('target met');
}
