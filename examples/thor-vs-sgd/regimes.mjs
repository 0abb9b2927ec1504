// The reproduction in ImageNet's regime: all of Fashion-MNIST's training images, ImageNet's
// augmentation scaled to 28², and each optimizer's settings (the starting points here, the
// tuned ones from tuning.json once `npm run tune -w thor-vs-sgd` has finished).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { presets } from './presets.mjs';

import { root } from './runs.mjs';

/** Where the committed study lives: its report, its runs' metrics, its tuning. */
export const REPORTS = join(root, 'reports', 'thor-vs-sgd');

/** Fashion-MNIST's training images per class (all of them); its 1000 test images a class are val. */
export const TRAIN_PER_CLASS = 6000;

/**
 * torchvision's RandomResizedCrop at 28² with the area drawn from [0.25, 1] (ImageNet's is
 * [0.08, 1] at 224²), then a horizontal flip. A Fashion-MNIST garment fills its frame, where an
 * ImageNet object often fills a part of a larger photo: the smallest crop here is 14×14 pixels, a
 * quarter of the garment (a sleeve, a collar, a heel), about as much of the object as ImageNet's
 * smallest crops keep; 0.08 would leave 8×8 pixels, less than a pocket.
 */
export const AUGMENT = { randomResizedCrop: { size: 28, scale: [0.25, 1] }, flip: true };

/**
 * What both optimizers' runs share besides the model: the augmentation, and the val split scored
 * four times an epoch, so that epochs to a target are counted to a quarter of an epoch (the
 * reference counts whole epochs of 45 and 90; whole epochs of 4 and 8 would be too coarse).
 */
const REGIME = { augment: AUGMENT, evalsPerEpoch: 4 };

/** SGD's full budget in epochs; THOR (and the SGD run at THOR's budget) gets half. */
export const SGD_EPOCHS = 8;

/**
 * Where tuning starts: each optimizer's preset from the small regime (tuned there), with this
 * regime's augmentation and budget. The ResNet-8 (3×3 stem of 16, one basic block per stage at
 * 16/32/64; 78,042 parameters) is the small regime's: 60,000 augmented images make it underfit.
 */
export const START = {
  sgd: { ...presets['fashion-mnist-sgd'], ...REGIME, epochs: SGD_EPOCHS },
  thor: { ...presets['fashion-mnist-thor'], ...REGIME, epochs: SGD_EPOCHS / 2 },
};

/** tuning.json of `npm run tune -w thor-vs-sgd` in `dir`, or undefined before it has been run. */
export async function readTuning(dir = REPORTS) {
  return readFile(join(dir, 'tuning.json'), 'utf8').then(JSON.parse, () => undefined);
}

/**
 * Each optimizer's config fields for the reproduction: its tuned best when `npm run tune -w thor-vs-sgd` has
 * finished (tuning.json's `best`), else its starting point. `tuned` says which.
 */
export async function settings(dir = REPORTS) {
  const tuning = await readTuning(dir);
  const best = tuning?.finished === true ? tuning.best : undefined;
  return {
    sgd: best === undefined ? START.sgd : { ...START.sgd, ...best.sgd.changes },
    thor: best === undefined ? START.thor : { ...START.thor, ...best.thor.changes },
    tuning,
    tuned: best !== undefined,
  };
}
