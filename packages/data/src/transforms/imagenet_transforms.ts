import { centerCrop } from './center_crop.js';
import { randomHorizontalFlip } from './random_horizontal_flip.js';
import { randomResizedCrop } from './random_resized_crop.js';
import { resize } from './resize.js';
import type { Transform } from './transform.js';

/** The ImageNet training augmentation: `RandomResizedCrop(size)` then `RandomHorizontalFlip()`. */
export function imagenetTrainTransforms(size = 224): Transform[] {
  return [randomResizedCrop(size), randomHorizontalFlip()];
}

/** The ImageNet evaluation transform: `Resize(resizeTo)` (shorter side) then `CenterCrop(size)`. */
export function imagenetEvalTransforms(size = 224, resizeTo = 256): Transform[] {
  return [resize(resizeTo), centerCrop(size)];
}
