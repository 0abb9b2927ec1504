export { DatasetError } from './dataset_error.js';
export type { ImageDataset } from './image_dataset.js';
export { IMAGE_EXTENSIONS, isImageFile } from './image_extensions.js';
export { openImageFolder, type OpenImageFolderOptions } from './open_image_folder.js';
export { openImageNet, SYNSET_WORDS_FILES, type OpenImageNetOptions } from './open_imagenet.js';
export { readSynsetWords } from './read_synset_words.js';
export { readValGroundTruth, VAL_GROUND_TRUTH_FILES } from './read_val_ground_truth.js';
