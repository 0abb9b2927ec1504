/** A batch of decoded, transformed, normalized images and their labels. */
export interface Batch {
  /** `shape[0]` images, NHWC float32. */
  readonly images: Float32Array;
  /** `labels[k]` is the label of image k. */
  readonly labels: Int32Array;
  /** `indices[k]` is image k's index in the dataset. */
  readonly indices: Int32Array;
  /** [batch, height, width, 3]; the batch is smaller than asked when files were skipped. */
  readonly shape: readonly [number, number, number, 3];
  readonly epoch: number;
  /** Position of this batch in the epoch. */
  readonly index: number;
  /**
   * Hands the batch's image buffer back to the `DataLoader` that made it, to fill with a later
   * batch: call it once nothing reads `images` any more (e.g. after the step that used its
   * tensors, or once a backend that copies, like wasm, made them). A fresh buffer costs the
   * system a page fault per 4 KiB, about as much as decoding the images on some machines. A batch
   * never released is garbage-collected as usual.
   */
  release(): void;
}
