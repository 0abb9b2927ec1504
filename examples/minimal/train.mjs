// The packages wired by hand: a folder of images → a DataLoader → a ResNet → THOR + momentum SGD,
// data-parallel over a ring of 2 workers. `node train.mjs [--data <dir>] [--quick]`; without
// --data it first prepares Fashion-MNIST (real 28×28 images, 10 classes) as class folders.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import * as data from '@thor-ts/data';
import { joinRingFromEnv, launch } from '@thor-ts/distributed';
import { CurvatureTaps, namedParameters, predict, resnetLight } from '@thor-ts/model';
import * as optim from '@thor-ts/optim';

const { values } = parseArgs({ options: { data: { type: 'string' }, quick: { type: 'boolean' } } });
const limit = values.quick ? 200 : 1000; // images per class
const root = values.data ?? fileURLToPath(new URL(`.data/fashion-mnist-${limit}`, import.meta.url));
const [epochs, target] = [2, 0.7]; // 2 epochs, then val top-1 ≥ 70% or exit 1

if (process.env.RANK === undefined) {
  // The launcher (torchrun's part): prepare the images once, then start 2 workers on this file.
  if (values.data === undefined) await data.prepareFashionMnist({ out: root, limit });
  const args = [fileURLToPath(import.meta.url), ...process.argv.slice(2), '--data', root];
  process.exitCode = await launch({ nproc: 2, command: process.execPath, args });
} else {
  await initBackend();
  const ring = await joinRingFromEnv();
  const { rank, worldSize } = ring;
  const trainSet = await data.openImageFolder(join(root, 'train'));
  const valSet = await data.openImageFolder(join(root, 'val'));
  const loader = new data.DataLoader(trainSet, {
    batchSize: 32, // this worker's share of a global batch of 64
    transforms: [data.randomHorizontalFlip(0.5)],
    sampler: new data.DistributedSampler(trainSet.files.length, { numReplicas: worldSize, rank }),
    dropLast: true,
  });

  // A ResNet-8; every rank builds the same weights from the same seed.
  const classes = trainSet.classes.length;
  const model = resnetLight({ classes, layers: [1, 1, 1], widths: [16, 32, 64], seed: 1 });
  const params = namedParameters(model);
  const nameOf = new Map([...params].map(([name, v]) => [v.name, name]));
  const lr = optim.cosineDecay(0.1, epochs * loader.numBatches);
  const sgd = new optim.MomentumSGD(params, { lr, momentum: 0.9, weightDecay: 5e-4 });
  const thor = new optim.Thor({ damping: 0.03, blockSize: 128, refresh: { every: 10 } });
  const { preconditioned: pre, passThrough: rest } = thor.register(model);
  if (rank === 0) console.log(`THOR: ${pre.length} layers preconditioned, ${rest.length} to SGD`);

  for (let epoch = 0, step = 0; epoch < epochs; epoch++) {
    let lossSum = 0;
    for await (const batch of loader.epoch(epoch)) {
      const taps = thor.wantsTaps(step) ? new CurvatureTaps() : undefined;
      const x = tf.tensor4d(batch.images, batch.shape);
      const y = tf.tensor1d(batch.labels, 'int32');
      const { value, grads } = tf.variableGrads(
        () => optim.softmaxCrossEntropy(model.forward(x, { training: true, taps }), y, 0.1),
        [...params.values()],
      );
      // The mean gradient over the ranks, with the mean loss as an extra value at the end.
      const names = [...params.keys()];
      const local = new Map(Object.entries(grads).map(([v, g]) => [nameOf.get(v), g]));
      const flat = optim.flatten(names, local, [value.dataSync()[0]]);
      const reduced = await ring.allReduce(flat, { op: 'mean' });
      const { tensors: mean, extra } = optim.unflatten(names, params, reduced);
      lossSum += extra[0];
      if (taps !== undefined) {
        await optim.refreshThor(thor, taps, ring, step); // factors averaged, inversions shared
        taps.dispose();
      }
      const update = thor.precondition(mean, undefined, optim.valueAt(lr, step));
      sgd.step(update);
      tf.dispose([x, y, value, ...local.values(), ...mean.values(), ...update.values()]);
      batch.release();
      step += 1;
    }
    const loss = (lossSum / loader.numBatches).toFixed(4);
    if (rank === 0) console.log(`epoch ${epoch + 1}/${epochs}: train loss ${loss}`);
  }

  // Rank 0 scores the val split with its weights and batch-norm statistics.
  if (rank === 0) {
    const sampler = new data.DistributedSampler(valSet.files.length, { shuffle: false });
    const val = new data.DataLoader(valSet, { batchSize: 100, transforms: [], sampler });
    let right = 0;
    for await (const b of val.epoch(0)) {
      const guess = tf.tidy(() => tf.argMax(predict(model, tf.tensor4d(b.images, b.shape)), 1));
      const g = guess.dataSync();
      right += b.labels.filter((label, i) => label === g[i]).length;
      guess.dispose();
    }
    const top1 = right / valSet.files.length;
    console.log(`top-1 ${(100 * top1).toFixed(2)}% on ${valSet.files.length} val images`);
    process.exitCode = top1 >= target ? 0 : 1;
  }
  await ring.close();
}
