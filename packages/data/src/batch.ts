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
}
