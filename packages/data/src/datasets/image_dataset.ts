/**
 * A scanned image-classification dataset: file `i` is `join(root, files[i])` and has label
 * `labels[i]`, an index into `classes` (sorted class folder names, torchvision's ImageFolder order).
 */
export interface ImageDataset {
  /** The directory the file paths are relative to (for ImageNet, the split directory). */
  readonly root: string;
  /** Class ids in label order: the sorted folder names (wnids for ImageNet). */
  readonly classes: readonly string[];
  /** Human-readable class names in label order, from a synset words file when one was found. */
  readonly classNames: readonly string[] | undefined;
  /** Image paths relative to `root`, with `/` separators. */
  readonly files: readonly string[];
  /** `labels[i]` is the label of `files[i]`. */
  readonly labels: Int32Array;
}
