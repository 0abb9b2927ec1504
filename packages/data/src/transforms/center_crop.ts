import { cropView, type ImageView } from './image_view.js';
import { pythonRound } from './python_round.js';
import type { Transform } from './transform.js';

/**
 * torchvision's `CenterCrop`: the `size`×`size` (or `[height, width]`) middle of the image, its
 * offset rounded half to even like torchvision's `int(round((h - crop_h) / 2))`.
 */
export function centerCrop(size: number | readonly [number, number]): Transform {
  const [height, width] = typeof size === 'number' ? [size, size] : size;
  return (image: ImageView) => {
    if (width > image.width || height > image.height) {
      throw new RangeError(
        `centerCrop expected an image of at least ${width}×${height}, found ` +
          `${image.width}×${image.height}; resize it first.`,
      );
    }
    const top = pythonRound((image.height - height) / 2);
    const left = pythonRound((image.width - width) / 2);
    return cropView(image, left, top, width, height);
  };
}
