import { cropView, type ImageView } from './image_view.js';
import { pythonRound } from './python_round.js';
import type { Random } from './random.js';
import type { Transform } from './transform.js';

export interface RandomResizedCropOptions {
  /** Range of the crop's area as a fraction of the image's. Default [0.08, 1]. */
  scale?: readonly [number, number];
  /** Range of the crop's width / height, drawn log-uniformly. Default [3/4, 4/3]. */
  ratio?: readonly [number, number];
}

/** A crop: top row `i`, left column `j`, height `h`, width `w` (torchvision's names). */
export interface CropParams {
  i: number;
  j: number;
  h: number;
  w: number;
}

/**
 * torchvision's `RandomResizedCrop.get_params`: up to 10 tries of a random area and log-uniform
 * aspect ratio; the first that fits is placed uniformly. When none fits, a center crop of the
 * whole image clamped to the ratio range.
 */
export function randomResizedCropParams(
  width: number,
  height: number,
  random: Random,
  scale: readonly [number, number] = [0.08, 1],
  ratio: readonly [number, number] = [3 / 4, 4 / 3],
): CropParams {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * random.uniform(scale[0], scale[1]);
    const aspectRatio = Math.exp(random.uniform(logRatio[0], logRatio[1]));
    const w = pythonRound(Math.sqrt(targetArea * aspectRatio));
    const h = pythonRound(Math.sqrt(targetArea / aspectRatio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const i = random.int(0, height - h + 1);
      const j = random.int(0, width - w + 1);
      return { i, j, h, w };
    }
  }
  const inRatio = width / height;
  let w: number;
  let h: number;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    w = width;
    h = pythonRound(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    h = height;
    w = pythonRound(h * Math.max(ratio[0], ratio[1]));
  } else {
    w = width;
    h = height;
  }
  return { i: Math.floor((height - h) / 2), j: Math.floor((width - w) / 2), h, w };
}

/**
 * Crops a random region (see {@link randomResizedCropParams}) and resizes it to `size`×`size`,
 * or `size[1]` wide by `size[0]` high.
 */
export function randomResizedCrop(
  size: number | readonly [number, number],
  options: RandomResizedCropOptions = {},
): Transform {
  const [outHeight, outWidth] = typeof size === 'number' ? [size, size] : size;
  return (image: ImageView, random: Random) => {
    const { i, j, h, w } = randomResizedCropParams(
      image.width,
      image.height,
      random,
      options.scale,
      options.ratio,
    );
    return cropView(image, j, i, w, h, outWidth, outHeight);
  };
}
