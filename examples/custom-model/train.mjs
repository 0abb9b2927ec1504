// A network of one's own, trained with THOR on 2 workers through `train()`: `node train.mjs
// [--quick]`. Prepares Fashion-MNIST (real 28×28 images, 10 classes) as class folders, trains
// the small VGG of vgg.mjs (stopped once and resumed from its checkpoint), then loads the saved
// weights into a fresh model, scores the val split with them, and exits 1 unless that top-1
// reaches the stated target and matches the run's own.
import './vgg.mjs';

import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import {
  DataLoader,
  DistributedSampler,
  openImageFolder,
  prepareFashionMnist,
} from '@thor-ts/data';
import { launch } from '@thor-ts/distributed';
import { buildArch, loadWeights, predict } from '@thor-ts/model';
import { validateConfig } from '@thor-ts/train';

const { values } = parseArgs({ options: { quick: { type: 'boolean' } } });
const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const limit = values.quick ? 200 : 1000; // images per class and split
const target = values.quick ? 0.7 : 0.8; // the val top-1 the run must reach
const data = here(`.data/fashion-mnist-${limit}`);
const out = here(`runs/${values.quick ? 'quick' : 'full'}`);

const config = validateConfig({
  data,
  out,
  model: { arch: 'vgg-small', classes: 10, widths: [32, 64, 128] },
  augment: 'small', // random horizontal flips
  optimizer: 'thor',
  epochs: values.quick ? 2 : 4,
  batchSize: 64, // 32 per worker
  lr: { schedule: 'cosine', base: 0.1 },
  momentum: 0.9,
  weightDecay: 5e-4,
  labelSmoothing: 0.1,
  thor: { dampingBase: 0.03, dampingDecay: 0.87, frequency: 10, blockSize: 128 },
  seed: 1,
  checkpointEvery: 0,
});

await prepareFashionMnist({ out: data, limit });
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await writeFile(join(out, 'run.json'), JSON.stringify(config, null, 2));
const workers = async (...flags) => {
  const args = [here('worker.mjs'), join(out, 'run.json'), ...flags];
  const code = await launch({ nproc: 2, command: process.execPath, args });
  if (code !== 0) throw new Error(`custom-model: expected the workers to exit 0, found ${code}`);
};
// Stopped partway through the second epoch (as Ctrl-C or a preempted job would stop it), then
// started again: the run goes on from its last.ckpt.
const stepsPerEpoch = Math.floor((limit * 10) / config.batchSize);
await workers('--stop-after', String(stepsPerEpoch + 7));
await workers();

// The saved weights, in a fresh model built from the registry, score the val split in this process.
await initBackend();
const { arch, ...fields } = config.model;
const model = buildArch(arch, { ...fields, seed: 0 });
await loadWeights(model, join(out, 'weights.safetensors'));
const valSet = await openImageFolder(join(data, 'val'));
const sampler = new DistributedSampler(valSet.files.length, { shuffle: false });
let right = 0;
for await (const b of new DataLoader(valSet, { batchSize: 100, transforms: [], sampler }).epoch(
  0,
)) {
  const guess = tf.tidy(() => tf.argMax(predict(model, tf.tensor4d(b.images, b.shape)), 1));
  const g = guess.dataSync();
  right += b.labels.filter((label, i) => label === g[i]).length;
  guess.dispose();
}
const top1 = right / valSet.files.length;
const lines = (await readFile(join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
const trained = JSON.parse(lines[lines.length - 1]).top1;
console.log(
  `reloaded weights: top-1 ${(100 * top1).toFixed(2)}% on ${valSet.files.length} val images (the run's last evaluation: ${(100 * trained).toFixed(2)}%, target ${100 * target}%)`,
);
// The same weights and images: the same answers, up to an image whose top two logits tie in float32.
process.exitCode = top1 >= target && Math.abs(top1 - trained) <= 1 / valSet.files.length ? 0 : 1;
