import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  centerCrop,
  DataLoader,
  decodeImage,
  DistributedSampler,
  IMAGENET_MEAN,
  IMAGENET_STD,
  ImageDecodeError,
  MAX_IMAGE_PIXELS,
  imagenetTrainTransforms,
  imagenetEvalTransforms,
  normalizationTable,
  openImageNet,
  Random,
  resize,
  writeSyntheticImageNet,
  type Batch,
  type ImageDataset,
  type SkippedFile,
  type Transform,
  writeNormalized,
} from '../dist/index.js';

let dir: string;
let train: ImageDataset;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'thor-ts-data-loader-'));
  // 3 classes × 4 train images of 80×60: small enough to decode in milliseconds.
  await writeSyntheticImageNet(dir, { classes: 3, trainPerClass: 4, width: 80, height: 60 });
  train = await openImageNet(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(loader: DataLoader, epoch: number): Promise<Batch[]> {
  const batches: Batch[] = [];
  for await (const batch of loader.epoch(epoch)) batches.push(batch);
  return batches;
}

async function collectFrom(loader: DataLoader, epoch: number, from: number): Promise<Batch[]> {
  const batches: Batch[] = [];
  for await (const batch of loader.epoch(epoch, from)) batches.push(batch);
  return batches;
}

/** The mean of channel c over one image of a batch, back in pixel units (0–255). */
function meanPixel(batch: Batch, k: number, c: number): number {
  const [, h, w] = batch.shape;
  let sum = 0;
  for (let p = 0; p < h * w; p++) sum += batch.images[(k * h * w + p) * 3 + c]!;
  return ((sum / (h * w)) * IMAGENET_STD[c]! + IMAGENET_MEAN[c]!) * 255;
}

describe('DataLoader', () => {
  it('yields NHWC float32 batches whose labels match the images', async () => {
    const loader = new DataLoader(train, { batchSize: 5, transforms: imagenetTrainTransforms(32) });
    const batches = await collect(loader, 0);
    // 12 images in batches of 5: 5, 5, 2.
    expect(batches.map((b) => b.shape)).toEqual([
      [5, 32, 32, 3],
      [5, 32, 32, 3],
      [2, 32, 32, 3],
    ]);
    expect(loader.numBatches).toBe(3);
    const seen = batches.flatMap((b) => Array.from(b.indices)).sort((a, b) => a - b);
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => i));
    for (const batch of batches) {
      batch.indices.forEach((i, k) => {
        expect(batch.labels[k]).toBe(train.labels[i]);
        // Class 0's colour is 128 + 70·cos(0) = 198 red (writeSyntheticImageNet); the others'
        // red is 128 + 70·cos(2π/3) = 93 and 128 + 70·cos(4π/3) = 93. Blurred noise averages out.
        const red = meanPixel(batch, k, 0);
        expect(Math.abs(red - (batch.labels[k] === 0 ? 198 : 93))).toBeLessThan(12);
      });
    }
    expect(loader.imagesPerSecond).toBeGreaterThan(0);
  });

  it('writes each image as decodeImage then writeNormalized would, flips included', async () => {
    // The loader resamples and normalizes straight into the batch; decodeImage mirrors the
    // 8-bit image and writeNormalized converts it: the floats must be the same.
    const table = normalizationTable({ mean: IMAGENET_MEAN, std: IMAGENET_STD });
    for (const transforms of [imagenetTrainTransforms(48), imagenetEvalTransforms(40, 48)]) {
      const loader = new DataLoader(train, { batchSize: 5, transforms, seed: 9 });
      const [batch] = await collect(loader, 2);
      const pixels = batch!.shape[1] * batch!.shape[2] * 3;
      for (let k = 0; k < batch!.shape[0]; k++) {
        const i = batch!.indices[k]!;
        const path = join(train.root, train.files[i]!);
        const image = await decodeImage(
          await readFile(path),
          transforms,
          Random.forSample(9, 2, i),
        );
        const expected = new Float32Array(pixels);
        writeNormalized(image, table, expected, 0);
        expect(batch!.images.subarray(k * pixels, (k + 1) * pixels)).toEqual(expected);
      }
    }
  });

  it('gives the same batches for the same seed and epoch, others for another epoch', async () => {
    const make = () =>
      new DataLoader(train, {
        batchSize: 4,
        transforms: imagenetTrainTransforms(24),
        seed: 5,
        concurrency: 3,
      });
    const [a, b, c] = [
      await collect(make(), 1),
      await collect(make(), 1),
      await collect(make(), 2),
    ];
    expect(b.map((x) => Array.from(x.images))).toEqual(a.map((x) => Array.from(x.images)));
    expect(b.map((x) => Array.from(x.indices))).toEqual(a.map((x) => Array.from(x.indices)));
    expect(c.map((x) => Array.from(x.indices))).not.toEqual(a.map((x) => Array.from(x.indices)));
  });

  it('starts an epoch at a later batch with the same batches, without decoding the skipped', async () => {
    const make = (set: ImageDataset) =>
      new DataLoader(set, {
        batchSize: 4,
        transforms: imagenetTrainTransforms(24),
        seed: 5,
        onError: 'fail',
      });
    const whole = await collect(make(train), 1);
    // Batch 0's files do not exist: decoding any of them would fail the epoch.
    const first = new Set(whole[0]!.indices);
    const later = make({
      ...train,
      files: train.files.map((f, i) => (first.has(i) ? 'gone.JPEG' : f)),
    });
    const rest: Batch[] = [];
    for await (const batch of later.epoch(1, 1)) rest.push(batch);
    expect(rest.map((x) => x.index)).toEqual([1, 2]);
    expect(rest.map((x) => Array.from(x.images))).toEqual(
      whole.slice(1).map((x) => Array.from(x.images)),
    );
    const none: Batch[] = [];
    for await (const batch of later.epoch(1, 3)) none.push(batch);
    expect(none).toEqual([]);
    await expect(collectFrom(later, 1, 4)).rejects.toThrow(
      'Expected a first batch in [0, 3] for epoch 1, found 4.',
    );
  });

  it('gives every rank of a DistributedSampler the same number of batches', async () => {
    // 12 images over 5 ranks: ceil(12/5) = 3 each (3 padded), so 2 batches of 2 and 1 per rank.
    const counts = [];
    for (let rank = 0; rank < 5; rank++) {
      const sampler = new DistributedSampler(train.files.length, { numReplicas: 5, rank });
      const loader = new DataLoader(train, { batchSize: 2, transforms: [centerCrop(16)], sampler });
      counts.push((await collect(loader, 0)).map((b) => b.shape[0]));
    }
    expect(counts).toEqual(Array(5).fill([2, 1]));
  });

  it('skips a corrupt file, reporting its path, without shifting labels', async () => {
    const bad = join(train.root, train.files[1]!);
    await writeFile(bad, 'this is not a JPEG');
    try {
      const skipped: SkippedFile[] = [];
      const loader = new DataLoader(train, {
        batchSize: 12,
        transforms: [resize(20), centerCrop(20)],
        onSkip: (s) => skipped.push(s),
      });
      const [batch] = await collect(loader, 0);
      expect(batch!.shape[0]).toBe(11);
      expect(Array.from(batch!.indices)).not.toContain(1);
      batch!.indices.forEach((i, k) => expect(batch!.labels[k]).toBe(train.labels[i]));
      // The images after the skipped one moved up with their labels: each slot holds its image.
      const table = normalizationTable({ mean: IMAGENET_MEAN, std: IMAGENET_STD });
      expect(batch!.images.length).toBe(11 * 20 * 20 * 3);
      for (let k = 0; k < 11; k++) {
        const path = join(train.root, train.files[batch!.indices[k]!]!);
        const image = await decodeImage(
          await readFile(path),
          [resize(20), centerCrop(20)],
          new Random(0),
        );
        const expected = new Float32Array(20 * 20 * 3);
        writeNormalized(image, table, expected, 0);
        expect(batch!.images.subarray(k * 1200, (k + 1) * 1200)).toEqual(expected);
      }
      expect(skipped).toEqual([
        { path: bad, index: 1, label: 0, epoch: 0, reason: expect.stringMatching(/unsupported/) },
      ]);
      expect(loader.skipped).toEqual(skipped);

      const failing = new DataLoader(train, {
        batchSize: 12,
        transforms: [centerCrop(20)],
        onError: 'fail',
      });
      const error = await collect(failing, 0).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ImageDecodeError);
      expect((error as ImageDecodeError).path).toBe(bad);
    } finally {
      await writeSyntheticImageNet(dir, { classes: 3, trainPerClass: 4, width: 80, height: 60 });
    }
  });

  it('skips a file whose header claims more pixels than any image may have, before decoding it', async () => {
    const bad = join(train.root, train.files[2]!);
    const good = await readFile(bad);
    // The same JPEG with its frame header claiming 60000×60000 (3.6 billion pixels).
    const huge = Buffer.from(good);
    const sof = huge.indexOf(Buffer.from([0xff, 0xc0]));
    huge.writeUInt16BE(60000, sof + 5);
    huge.writeUInt16BE(60000, sof + 7);
    await writeFile(bad, huge);
    try {
      for (const transforms of [[] as Transform[], imagenetTrainTransforms(32)]) {
        const skipped: SkippedFile[] = [];
        const loader = new DataLoader(train, {
          batchSize: 12,
          transforms: transforms.length === 0 ? [resize([60, 80])] : transforms,
          onSkip: (s) => skipped.push(s),
        });
        const [batch] = await collect(loader, 0);
        expect(batch!.shape[0]).toBe(11);
        expect(skipped.map((s) => s.reason)).toEqual([
          `the header gives 60000×60000, over the ${MAX_IMAGE_PIXELS} pixels an image may have`,
        ]);
      }
    } finally {
      await writeFile(bad, good);
    }
  });

  it('decodes at most prefetch batches ahead of a consumer that has stopped pulling', async () => {
    let planned = 0;
    const count: Transform = (image) => (planned++, image);
    const loader = new DataLoader(train, {
      batchSize: 2,
      transforms: [count, centerCrop(16)],
      prefetch: 1,
    });
    const epoch = loader.epoch(0);
    await epoch.next();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The batch held (2 images) and one batch ahead (2); without the bound all 12 would be decoded.
    expect(planned).toBeLessThanOrEqual(4);
    await epoch.return();
  });
});
