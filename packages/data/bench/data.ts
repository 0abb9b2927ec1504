/**
 * Decode + augment throughput: this package's DataLoader (RandomResizedCrop(224), flip,
 * normalize into float32 batches) beside torchvision's ImageFolder + PIL pipeline, on the same
 * generated ImageNet-like JPEGs (500×375, quality 90), at 1 and 2 workers, each pinned to that
 * many cores with taskset. Each round runs both, alternating; the table gives each one's median
 * over the rounds of images per second (wall clock) and of images per CPU-second (user + system
 * time of every thread and worker process over the timed epoch: the cost per core, which other
 * jobs on a shared machine disturb less). Prints a table and one JSON line.
 *
 *   npm run bench:data              (from the repository root)
 *   npm run bench:data -- --images 800 --rounds 7
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

import {
  DataLoader,
  imagenetTrainTransforms,
  openImageFolder,
  writeSyntheticImageNet,
} from '../dist/index.js';

const BATCH = 32;
const here = fileURLToPath(new URL('.', import.meta.url));
const arg = (name: string, fallback: number) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
};

if (process.argv[2] === '--child') {
  // One measurement of this package, in a process pinned by the parent.
  const [dir, workers] = [process.argv[3]!, Number(process.argv[4])];
  sharp.concurrency(1); // one libvips thread per image: `workers` images at once use `workers` cores
  const dataset = await openImageFolder(dir);
  const loader = new DataLoader(dataset, {
    batchSize: BATCH,
    transforms: imagenetTrainTransforms(224),
    workers,
    concurrency: 2 * workers,
    prefetch: 2,
  });
  let warm = 0;
  // A training loop hands each batch's buffer back once its step is done (batch.release()).
  for await (const batch of loader.epoch(0)) {
    batch.release();
    if ((warm += batch.shape[0]) >= 2 * BATCH) break;
  }
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  let images = 0;
  for await (const batch of loader.epoch(1)) {
    images += batch.shape[0];
    batch.release();
  }
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  console.log(JSON.stringify({ images, seconds, rate: images / seconds, cpuSeconds }));
  process.exit(0);
}

const count = arg('images', 400);
const classes = 10;
const root = join(tmpdir(), `thor-ts-data-bench-${count}`);
if (!existsSync(join(root, 'synset_words.txt'))) {
  process.stdout.write(`generating ${count} 500×375 q90 JPEGs in ${root} ... `);
  await writeSyntheticImageNet(root, {
    classes,
    trainPerClass: Math.ceil(count / classes),
    valPerClass: 0,
  });
  console.log('done');
}
const train = join(root, 'train');

interface Result {
  images: number;
  seconds: number;
  rate: number;
  cpuSeconds: number;
}

function measure(command: string, args: string[], workers: number, env = {}): Result {
  const cores = workers === 1 ? '0' : '0,1';
  const run = spawnSync('taskset', ['-c', cores, command, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  if (run.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${run.stderr}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as Result;
}

// The machine may be shared: alternate the two pipelines, `rounds` times, and keep the medians.
const rounds = arg('rounds', 5);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
interface Row {
  workers: number;
  ours: { rate: number; perCpuSecond: number };
  torchvision: { rate: number; perCpuSecond: number };
}
const rows: Row[] = [];
for (const workers of [1, 2]) {
  const ours: Result[] = [];
  const torchvision: Result[] = [];
  for (let round = 0; round < rounds; round++) {
    const child = ['--import', 'tsx', join(here, 'data.ts'), '--child', train, String(workers)];
    ours.push(measure(process.execPath, child, workers, { UV_THREADPOOL_SIZE: String(workers) }));
    const python = [join(here, 'torchvision_data.py'), train, String(workers), String(BATCH)];
    torchvision.push(measure('/usr/bin/python3', python, workers, { OMP_NUM_THREADS: '1' }));
  }
  const summary = (results: Result[]) => ({
    rate: median(results.map((r) => r.rate)),
    perCpuSecond: median(results.map((r) => r.images / r.cpuSeconds)),
  });
  rows.push({ workers, ours: summary(ours), torchvision: summary(torchvision) });
}

console.log(
  `\nRandomResizedCrop(224) + flip + normalize, ${count} JPEGs 500×375 q90, batch ${BATCH}, ` +
    `medians of ${rounds} alternating rounds; load average ${loadavg()[0]!.toFixed(1)} at the end\n`,
);
console.log(
  '| workers (cores) | @thor-ts/data img/s | torchvision 0.14 + PIL img/s | ratio | ' +
    '@thor-ts/data img/CPU-s | torchvision img/CPU-s | ratio |',
);
console.log('|---|---|---|---|---|---|---|');
for (const { workers, ours, torchvision } of rows) {
  console.log(
    `| ${workers} | ${ours.rate.toFixed(0)} | ${torchvision.rate.toFixed(0)} | ` +
      `${(ours.rate / torchvision.rate).toFixed(2)}× | ${ours.perCpuSecond.toFixed(0)} | ` +
      `${torchvision.perCpuSecond.toFixed(0)} | ` +
      `${(ours.perCpuSecond / torchvision.perCpuSecond).toFixed(2)}× |`,
  );
}
console.log(
  JSON.stringify({
    bench: 'data',
    images: count,
    rounds,
    results: rows.map(({ workers, ours, torchvision }) => ({
      workers,
      ours: Math.round(ours.rate),
      torchvision: Math.round(torchvision.rate),
      ratio: Number((ours.rate / torchvision.rate).toFixed(2)),
      oursPerCpuSecond: Math.round(ours.perCpuSecond),
      torchvisionPerCpuSecond: Math.round(torchvision.perCpuSecond),
      cpuRatio: Number((ours.perCpuSecond / torchvision.perCpuSecond).toFixed(2)),
    })),
  }),
);
