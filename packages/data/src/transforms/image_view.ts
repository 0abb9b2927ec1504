/**
 * An image not decoded yet: the source's size, the window of the source it shows and the size it
 * shows it at. Geometric transforms (crops, resizes, flips) edit the view; `decodeImage` then
 * decodes the source once, shrinking on load where it can, straight to the final pixels.
 */
export interface ImageView {
  /** Size of the encoded source image. */
  readonly sourceWidth: number;
  readonly sourceHeight: number;
  /** The window of the source shown, in source pixels (fractional after a resize then a crop). */
  readonly left: number;
  readonly top: number;
  readonly cropWidth: number;
  readonly cropHeight: number;
  /** The size the window is resized to: the image's current size. */
  readonly width: number;
  readonly height: number;
  /** Mirror left to right. */
  readonly flip: boolean;
}

/** The whole of a `width`×`height` source at its own size. */
export function fullView(width: number, height: number): ImageView {
  return {
    sourceWidth: width,
    sourceHeight: height,
    left: 0,
    top: 0,
    cropWidth: width,
    cropHeight: height,
    width,
    height,
    flip: false,
  };
}

/**
 * The view of the region (left, top, width, height), given in the view's current pixels,
 * resized to `outWidth`×`outHeight`.
 */
export function cropView(
  view: ImageView,
  left: number,
  top: number,
  width: number,
  height: number,
  outWidth = width,
  outHeight = height,
): ImageView {
  const sx = view.cropWidth / view.width;
  const sy = view.cropHeight / view.height;
  // A mirrored view shows its right edge at x = 0: measure the region from the source's right.
  const x = view.flip ? view.width - left - width : left;
  return {
    ...view,
    left: view.left + x * sx,
    top: view.top + top * sy,
    cropWidth: width * sx,
    cropHeight: height * sy,
    width: outWidth,
    height: outHeight,
  };
}
