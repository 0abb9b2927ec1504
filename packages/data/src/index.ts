export type { Batch } from './loader/batch.js';
export { centerCrop } from './transforms/center_crop.js';
export { DataLoader, type DataLoaderOptions, type SkippedFile } from './loader/data_loader.js';
export { DatasetError } from './datasets/dataset_error.js';
export {
  decodeImage,
  decodePending,
  decodePlanned,
  decodeView,
  MAX_IMAGE_PIXELS,
  planView,
  type DecodeOptions,
  type PendingImage,
} from './decode/decode_image.js';
export {
  DistributedSampler,
  type DistributedSamplerOptions,
} from './loader/distributed_sampler.js';
export type { ImageDataset } from './datasets/image_dataset.js';
export { ImageDecodeError } from './decode/image_decode_error.js';
export { fullView, type ImageView } from './transforms/image_view.js';
export {
  imagenetEvalTransforms,
  imagenetTrainTransforms,
} from './transforms/imagenet_transforms.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizationTable,
  writeNormalized,
  type Normalization,
} from './transforms/normalize.js';
export { openImageFolder, type OpenImageFolderOptions } from './datasets/open_image_folder.js';
export { openImageNet, type OpenImageNetOptions } from './datasets/open_imagenet.js';
export {
  FASHION_MNIST_CLASSES,
  prepareFashionMnist,
  type PrepareFashionMnistOptions,
} from './datasets/prepare_fashion_mnist.js';
export { Random } from './transforms/random.js';
export { randomHorizontalFlip } from './transforms/random_horizontal_flip.js';
export {
  randomResizedCrop,
  type RandomResizedCropOptions,
} from './transforms/random_resized_crop.js';
export type { RawImage } from './decode/raw_image.js';
export { readDevkitMeta, type DevkitMeta } from './datasets/read_devkit.js';
export { readImageSize } from './decode/read_image_size.js';
export { MatFileError, readMatFile, type MatValue } from './datasets/read_mat_file.js';
export { resize } from './transforms/resize.js';
export { toTensors, type BatchTensors, type ToTensorsOptions } from './loader/to_tensors.js';
export { applyTransforms, type Transform } from './transforms/transform.js';
export {
  syntheticJpeg,
  writeSyntheticImageNet,
  type SyntheticImageNetOptions,
} from './datasets/write_synthetic_imagenet.js';
