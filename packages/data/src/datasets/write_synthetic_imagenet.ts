import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import sharp from 'sharp';

import { Random } from '../transforms/random.js';

export interface SyntheticImageNetOptions {
  /** Number of classes (wnids n00000001, n00000002, ...). Default 4. */
  classes?: number;
  trainPerClass?: number;
  valPerClass?: number;
  /** Default 500×375, ImageNet's most common size. */
  width?: number;
  height?: number;
  /** JPEG quality. Default 90. */
  quality?: number;
  seed?: number;
}

/**
 * Writes a small ImageNet-like tree: `train/<wnid>/<wnid>_<k>.JPEG`, `val/<wnid>/...` and
 * `synset_words.txt`. Each image is seeded noise, blurred, over its class's colour (so it has
 * ImageNet-like JPEG sizes, ~30 KB at 500×375 q90, and a learnable label). Returns the wnids.
 */
export async function writeSyntheticImageNet(
  dir: string,
  options: SyntheticImageNetOptions = {},
): Promise<string[]> {
  const classes = options.classes ?? 4;
  const wnids = Array.from({ length: classes }, (_, c) => `n${String(c + 1).padStart(8, '0')}`);
  const splits: [string, number][] = [
    ['train', options.trainPerClass ?? 8],
    ['val', options.valPerClass ?? 2],
  ];
  let serial = 0;
  for (const [split, perClass] of splits) {
    for (const [c, wnid] of wnids.entries()) {
      await mkdir(join(dir, split, wnid), { recursive: true });
      for (let k = 0; k < perClass; k++) {
        const jpeg = await syntheticJpeg(c, classes, serial++, options);
        await writeFile(join(dir, split, wnid, `${wnid}_${k}.JPEG`), jpeg);
      }
    }
  }
  const words = wnids.map((w, c) => `${w} synthetic class ${c}`).join('\n');
  await writeFile(join(dir, 'synset_words.txt'), `${words}\n`);
  return wnids;
}

/** One synthetic JPEG of class `c` of `classes`: a hue per class, with blurred seeded noise. */
export async function syntheticJpeg(
  c: number,
  classes: number,
  serial: number,
  options: SyntheticImageNetOptions = {},
): Promise<Buffer> {
  const width = options.width ?? 500;
  const height = options.height ?? 375;
  const random = Random.forSample(options.seed ?? 0, c, serial);
  const hue = (2 * Math.PI * c) / classes;
  const base = [0, 2, 4].map((shift) => 128 + 70 * Math.cos(hue + (shift * Math.PI) / 3));
  const data = new Uint8ClampedArray(width * height * 3);
  for (let p = 0; p < data.length; p += 3) {
    for (let ch = 0; ch < 3; ch++) data[p + ch] = base[ch]! + (random.next() - 0.5) * 200;
  }
  return sharp(data, { raw: { width, height, channels: 3 } })
    .blur(2.5)
    .jpeg({ quality: options.quality ?? 90 })
    .toBuffer();
}
