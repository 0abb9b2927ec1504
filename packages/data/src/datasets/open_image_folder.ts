import { resolve } from 'node:path';

import type { ImageDataset } from './image_dataset.js';
import { readIndexCache, writeIndexCache } from './index_cache.js';
import { readSynsetWords } from './read_synset_words.js';
import { scanImageFolder } from './scan_image_folder.js';

export interface OpenImageFolderOptions {
  /**
   * An index file: read when it is up to date with the class folders, written after a scan
   * otherwise. Rescanning happens whenever a class folder's modification time changes.
   */
  cache?: string;
  /** A `<class> <name>` per line file giving class names (like ImageNet's `synset_words.txt`). */
  synsetWords?: string;
}

/**
 * Opens any folder-per-class dataset (`<dir>/<class>/**.{jpg,png,...}`) like torchvision's
 * `ImageFolder`: labels are the indices of the sorted class folder names.
 */
export async function openImageFolder(
  dir: string,
  options: OpenImageFolderOptions = {},
): Promise<ImageDataset> {
  const root = resolve(dir);
  const key = `folder:${root}:${options.synsetWords ?? ''}`;
  if (options.cache) {
    const cached = await readIndexCache(options.cache, key);
    if (cached) return cached;
  }
  const scan = await scanImageFolder(root);
  const words = options.synsetWords ? await readSynsetWords(options.synsetWords) : undefined;
  const dataset: ImageDataset = {
    root,
    classes: scan.classes,
    classNames: words ? scan.classes.map((c) => words.get(c) ?? c) : undefined,
    files: scan.files,
    labels: scan.labels,
  };
  if (options.cache) {
    const sources = options.synsetWords ? [...scan.sources, options.synsetWords] : scan.sources;
    await writeIndexCache(options.cache, key, sources, dataset);
  }
  return dataset;
}
