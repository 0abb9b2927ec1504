import type { ImageView } from './image_view.js';
import type { Random } from './random.js';

/**
 * One step of an image pipeline: takes the image (as a view still to be decoded) and the sample's
 * random stream, returns the transformed image. Pipelines are arrays of transforms, applied in order.
 */
export type Transform = (image: ImageView, random: Random) => ImageView;

/** Applies `transforms` in order. */
export function applyTransforms(
  image: ImageView,
  transforms: readonly Transform[],
  random: Random,
): ImageView {
  let out = image;
  for (const transform of transforms) out = transform(out, random);
  return out;
}
