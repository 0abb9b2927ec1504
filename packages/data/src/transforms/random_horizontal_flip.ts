import type { ImageView } from './image_view.js';
import type { Random } from './random.js';
import type { Transform } from './transform.js';

/** torchvision's `RandomHorizontalFlip`: mirrors the image left to right with probability `p`. */
export function randomHorizontalFlip(p = 0.5): Transform {
  return (image: ImageView, random: Random) =>
    random.next() < p ? { ...image, flip: !image.flip } : image;
}
