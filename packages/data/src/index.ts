export type { Batch } from './batch.js';
export { centerCrop } from './center_crop.js';
export { DataLoader, type DataLoaderOptions, type SkippedFile } from './data_loader.js';
export { DatasetError } from './dataset_error.js';
export {
  decodeImage,
  decodePending,
  decodePlanned,
  decodeView,
  MAX_IMAGE_PIXELS,
  planView,
  type DecodeOptions,
  type PendingImage,
} from './decode_image.js';
export { DistributedSampler, type DistributedSamplerOptions } from './distributed_sampler.js';
export type { ImageDataset } from './image_dataset.js';
export { ImageDecodeError } from './image_decode_error.js';
export { fullView, type ImageView } from './image_view.js';
export { imagenetEvalTransforms, imagenetTrainTransforms } from './imagenet_transforms.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizationTable,
  writeNormalized,
  type Normalization,
} from './normalize.js';
export { openImageFolder, type OpenImageFolderOptions } from './open_image_folder.js';
export { openImageNet, type OpenImageNetOptions } from './open_imagenet.js';
export {
  FASHION_MNIST_CLASSES,
  prepareFashionMnist,
  type PrepareFashionMnistOptions,
} from './prepare_fashion_mnist.js';
export { Random } from './random.js';
export { randomHorizontalFlip } from './random_horizontal_flip.js';
export { randomResizedCrop, type RandomResizedCropOptions } from './random_resized_crop.js';
export type { RawImage } from './raw_image.js';
export { readDevkitMeta, type DevkitMeta } from './read_devkit.js';
export { readImageSize } from './read_image_size.js';
export { MatFileError, readMatFile, type MatValue } from './read_mat_file.js';
export { resize } from './resize.js';
export { toTensors, type BatchTensors, type ToTensorsOptions } from './to_tensors.js';
export { applyTransforms, type Transform } from './transform.js';
export {
  syntheticJpeg,
  writeSyntheticImageNet,
  type SyntheticImageNetOptions,
} from './write_synthetic_imagenet.js';
