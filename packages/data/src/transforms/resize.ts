import { cropView, type ImageView } from './image_view.js';
import type { Transform } from './transform.js';

/**
 * torchvision's `Resize`: a number makes the shorter side that long, the longer side in proportion
 * (truncated, as torchvision does); `[height, width]` resizes to exactly that.
 */
export function resize(size: number | readonly [number, number]): Transform {
  return (image: ImageView) => {
    let width: number;
    let height: number;
    if (typeof size === 'number') {
      const short = Math.min(image.width, image.height);
      const long = Math.max(image.width, image.height);
      const newLong = Math.trunc((size * long) / short);
      [width, height] = image.width <= image.height ? [size, newLong] : [newLong, size];
    } else {
      [height, width] = size;
    }
    return cropView(image, 0, 0, image.width, image.height, width, height);
  };
}
