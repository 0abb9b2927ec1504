import sharp, { type Sharp } from 'sharp';

import { fullView, type ImageView } from '../transforms/image_view.js';
import { ImageDecodeError } from './image_decode_error.js';
import type { Random } from '../transforms/random.js';
import { flipHorizontal, type RawImage } from './raw_image.js';
import { readImageSize } from './read_image_size.js';
import { writeNormalized } from '../transforms/normalize.js';
import {
  resampleBilinear,
  resampleBilinearNormalized,
  type PixelWindow,
} from './resample_bilinear.js';
import { applyTransforms, type Transform } from '../transforms/transform.js';

export interface DecodeOptions {
  /**
   * A sharp resampling kernel for every resize. Default: Pillow's bilinear filter, computed here
   * exactly as Pillow does (what torchvision runs), for windows shrunk less than 2×; sharp's
   * antialiased `'linear'` kernel with JPEG shrink-on-load for windows shrunk more.
   */
  kernel?: 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';
  /**
   * What counts as a broken file. Default `'warning'`: a truncated JPEG fails, as it does in PIL.
   * `'error'` accepts files the decoder can finish with warnings.
   */
  failOn?: 'none' | 'truncated' | 'error' | 'warning';
}

/**
 * The most pixels an image may have (16383 × 16383, sharp's `limitInputPixels`): a larger one is
 * refused before any decoder allocates for it.
 */
export const MAX_IMAGE_PIXELS = 0x3fff * 0x3fff;

/**
 * Decodes an encoded image (JPEG, PNG, WebP, TIFF, ... whatever its file name says) to 3-channel
 * 8-bit RGB, through `transforms`. The transforms only plan the geometry; the file is then decoded
 * once, straight to the final size (see {@link decodeView}). Grayscale, CMYK, palette, 16-bit and
 * alpha images all come out as RGB (alpha is dropped, as PIL's `convert('RGB')` does). Throws an
 * {@link ImageDecodeError} naming `path`.
 */
export async function decodeImage(
  input: Uint8Array,
  transforms: readonly Transform[],
  random: Random,
  path = '<buffer>',
  options: DecodeOptions = {},
): Promise<RawImage> {
  const { image, flip } = await decodeView(input, transforms, random, path, options);
  return flip ? flipHorizontal(image) : image;
}

/**
 * {@link decodeImage} without the final mirroring: the pixels as the view shows them before any
 * flip, and whether to mirror them (so a caller can mirror while copying them out).
 */
export async function decodeView(
  input: Uint8Array,
  transforms: readonly Transform[],
  random: Random,
  path = '<buffer>',
  options: DecodeOptions = {},
): Promise<{ image: RawImage; flip: boolean }> {
  const decoded = await decodePending(input, transforms, random, path, options);
  return { image: decoded.toImage(), flip: decoded.flip };
}

/** An image sharp has decoded, with its last step (a resampling, a mirroring) still to run. */
export interface PendingImage {
  /** The final size. */
  readonly width: number;
  readonly height: number;
  readonly flip: boolean;
  /** The final pixels, unmirrored. */
  toImage(): RawImage;
  /** The final pixels through `table`, mirrored when `flip` is set, into `out` at `offset`. */
  writeNormalized(table: Float32Array, out: Float32Array, offset: number): void;
}

/**
 * Decodes the file in one sharp pipeline and returns what is left to do, so a caller can write
 * the final pixels straight into its own buffer (the `DataLoader` writes them into the batch).
 */
export async function decodePending(
  input: Uint8Array,
  transforms: readonly Transform[],
  random: Random,
  path = '<buffer>',
  options: DecodeOptions = {},
): Promise<PendingImage> {
  const view = await planView(input, transforms, random, path, options.failOn);
  return decodePlanned(input, view, path, options);
}

/**
 * The view `transforms` make of the encoded image: its size from the JPEG or PNG header (other
 * formats cost sharp a look at theirs), then the transforms' geometry. Throws an
 * {@link ImageDecodeError} naming `path` when the file gives no size.
 */
export async function planView(
  input: Uint8Array,
  transforms: readonly Transform[],
  random: Random,
  path = '<buffer>',
  failOn: DecodeOptions['failOn'] = 'warning',
): Promise<ImageView> {
  const header =
    readImageSize(input) ?? (await attempt(path, () => sharp(input, { failOn }).metadata()));
  if (!header.width || !header.height) {
    throw new ImageDecodeError(path, 'the header gives no image size');
  }
  if (header.width * header.height > MAX_IMAGE_PIXELS) {
    throw new ImageDecodeError(
      path,
      `the header gives ${header.width}×${header.height}, over the ${MAX_IMAGE_PIXELS} pixels an image may have`,
    );
  }
  // Outside the decoder's error handling: a transform that cannot apply is a pipeline error.
  return applyTransforms(fullView(header.width, header.height), transforms, random);
}

/** {@link decodePending} for a view already planned with {@link planView}. */
export async function decodePlanned(
  input: Uint8Array,
  view: ImageView,
  path = '<buffer>',
  options: DecodeOptions = {},
): Promise<PendingImage> {
  const failOn = options.failOn ?? 'warning';
  const plan = planDecode(view, options.kernel);
  const { data, info } = await attempt(path, () =>
    plan
      .pipeline(sharp(input, { failOn, sequentialRead: true }))
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true }),
  );
  if (info.channels !== 3 || info.width !== plan.width || info.height !== plan.height) {
    throw new ImageDecodeError(
      path,
      `decoded to ${info.width}×${info.height}×${info.channels}, expected ${plan.width}×${plan.height}×3`,
    );
  }
  const decoded: RawImage = { data, width: info.width, height: info.height, channels: 3 };
  const { resample } = plan;
  return {
    width: view.width,
    height: view.height,
    flip: view.flip,
    toImage: () =>
      resample
        ? resampleBilinear(decoded, resample.width, resample.height, resample.window)
        : decoded,
    writeNormalized: (table, out, offset) =>
      resample
        ? resampleBilinearNormalized(
            decoded,
            resample.width,
            resample.height,
            resample.window,
            table,
            out,
            offset,
            view.flip,
          )
        : writeNormalized(decoded, table, out, offset, view.flip),
  };
}

/** Runs a sharp call, turning its errors into {@link ImageDecodeError}s for `path`. */
async function attempt<T>(path: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw new ImageDecodeError(path, (error as Error).message);
  }
}

/** What sharp does, the size it decodes to, and the resampling left for after, if any. */
interface DecodePlan {
  pipeline: (image: Sharp) => Sharp;
  width: number;
  height: number;
  resample?: { width: number; height: number; window: PixelWindow };
}

/**
 * What torchvision computes for a view shrunk less than 2×: Pillow's bilinear resize of a region
 * of the source, of which a window is kept.
 */
export interface PillowResize {
  /** The region of the source that is resized. */
  source: PixelWindow;
  /** The size it is resized to. */
  width: number;
  height: number;
  /** The part of the resized image kept: the view's pixels. */
  window: PixelWindow;
}

/**
 * The view as Pillow's resize, for every view shrunk less than 2×:
 *
 * - A window on whole source pixels (every `RandomResizedCrop` of an ImageNet-sized photo): the
 *   window is cropped, then resized, as torchvision crops then resizes a PIL image.
 * - Any other window (`Resize` then `CenterCrop`): the whole image is resized and the window of
 *   the result kept, the window's offset rounded to whole pixels of the resized image.
 *
 * `undefined` for a view shrunk 2× or more.
 */
export function pillowResize(view: ImageView): PillowResize | undefined {
  const shrink = Math.min(view.cropWidth / view.width, view.cropHeight / view.height);
  if (shrink >= 2) return undefined;
  const { width, height } = view;
  if ([view.left, view.top, view.cropWidth, view.cropHeight].every(Number.isInteger)) {
    return {
      source: { left: view.left, top: view.top, width: view.cropWidth, height: view.cropHeight },
      width,
      height,
      window: { left: 0, top: 0, width, height },
    };
  }
  const frame = resizedFrame(view);
  return {
    source: { left: 0, top: 0, width: view.sourceWidth, height: view.sourceHeight },
    width: frame.width,
    height: frame.height,
    window: { left: frame.left, top: frame.top, width, height },
  };
}

/** The whole source resized by the view's scale, and where the view's window lies in it. */
function resizedFrame(view: ImageView) {
  const sx = view.width / view.cropWidth;
  const sy = view.height / view.cropHeight;
  const width = Math.max(view.width, Math.round(view.sourceWidth * sx));
  const height = Math.max(view.height, Math.round(view.sourceHeight * sy));
  const left = Math.min(Math.max(0, Math.round(view.left * sx)), width - view.width);
  const top = Math.min(Math.max(0, Math.round(view.top * sy)), height - view.height);
  return { width, height, left, top };
}

/**
 * How to decode the view, in one sharp pipeline read top to bottom once.
 *
 * - Shrunk less than 2× ({@link pillowResize}): sharp extracts the region to resize (or decodes
 *   the whole image), then Pillow's bilinear filter computes the window of the resized image;
 *   geometry and pixels are torchvision's.
 * - Shrunk 2× or more, or an explicit `kernel`: sharp resizes the whole source by the view's
 *   scale, then extracts the window. JPEG shrink-on-load applies (sharp skips it when a crop comes
 *   first) and libvips computes only the pixels the window needs; the window's offset is rounded
 *   to whole output pixels.
 */
function planDecode(view: ImageView, kernel: DecodeOptions['kernel']): DecodePlan {
  const resize = kernel === undefined ? pillowResize(view) : undefined;
  if (resize) {
    const { source, window } = resize;
    const whole = source.width === view.sourceWidth && source.height === view.sourceHeight;
    const sized =
      resize.width === source.width &&
      resize.height === source.height &&
      window.width === resize.width &&
      window.height === resize.height;
    return {
      pipeline: (image) => (whole ? image : image.extract(source)),
      width: source.width,
      height: source.height,
      resample: sized ? undefined : { width: resize.width, height: resize.height, window },
    };
  }
  const { width, height, left, top } = resizedFrame(view);
  return {
    pipeline: (image) => {
      if (width !== view.sourceWidth || height !== view.sourceHeight) {
        image.resize(width, height, { fit: 'fill', kernel: kernel ?? 'linear' });
      }
      if (left !== 0 || top !== 0 || view.width !== width || view.height !== height) {
        image.extract({ left, top, width: view.width, height: view.height });
      }
      return image;
    },
    width: view.width,
    height: view.height,
  };
}
