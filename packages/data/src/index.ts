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
  pillowResize,
  planView,
  type DecodeOptions,
  type PendingImage,
  type PillowResize,
} from './decode_image.js';
export { DistributedSampler, type DistributedSamplerOptions } from './distributed_sampler.js';
export type { ImageDataset } from './image_dataset.js';
export { ImageDecodeError } from './image_decode_error.js';
export { IMAGE_EXTENSIONS, isImageFile } from './image_extensions.js';
export { cropView, fullView, type ImageView } from './image_view.js';
export { imagenetEvalTransforms, imagenetTrainTransforms } from './imagenet_transforms.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizationTable,
  writeNormalized,
  type Normalization,
} from './normalize.js';
export { openImageFolder, type OpenImageFolderOptions } from './open_image_folder.js';
export { openImageNet, SYNSET_WORDS_FILES, type OpenImageNetOptions } from './open_imagenet.js';
export {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_TRAIN_PER_CLASS,
  prepareFashionMnist,
  type PrepareFashionMnistOptions,
} from './prepare_fashion_mnist.js';
export { pythonRound } from './python_round.js';
export { Random } from './random.js';
export { randomHorizontalFlip } from './random_horizontal_flip.js';
export {
  randomResizedCrop,
  randomResizedCropParams,
  type CropParams,
  type RandomResizedCropOptions,
} from './random_resized_crop.js';
export { flipHorizontal, type RawImage } from './raw_image.js';
export {
  DEVKIT_DIR,
  DEVKIT_GROUND_TRUTH,
  readDevkitGroundTruth,
  readDevkitMeta,
  type DevkitMeta,
} from './read_devkit.js';
export { readImageSize } from './read_image_size.js';
export {
  resampleBilinear,
  resampleBilinearNormalized,
  type PixelWindow,
} from './resample_bilinear.js';
export { MatFileError, readMatFile, type MatValue } from './read_mat_file.js';
export { readSynsetWords } from './read_synset_words.js';
export { readValGroundTruth, VAL_GROUND_TRUTH_FILES } from './read_val_ground_truth.js';
export { resize } from './resize.js';
export {
  toTensors,
  type BatchTensors,
  type TensorFactory,
  type ToTensorsOptions,
} from './to_tensors.js';
export { applyTransforms, type Transform } from './transform.js';
export { WASM_JPEG_STATUS, WasmJpeg } from './wasm_jpeg.js';
export {
  syntheticJpeg,
  writeSyntheticImageNet,
  type SyntheticImageNetOptions,
} from './write_synthetic_imagenet.js';
