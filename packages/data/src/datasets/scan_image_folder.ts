import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { DatasetError } from './dataset_error.js';
import { IMAGE_EXTENSIONS } from './image_extensions.js';
import { byCodePoint, listImages } from './list_images.js';
import { statOrUndefined } from './stat_or_undefined.js';

/** What a scan of a folder-per-class directory found, before class names are attached. */
export interface ClassFolders {
  readonly root: string;
  readonly classes: string[];
  readonly files: string[];
  readonly labels: Int32Array;
  /** The directories read, for the index cache to check later. */
  readonly sources: string[];
}

/** How many class folders are listed at once. */
const PARALLEL_READS = 32;

/**
 * Scans `<dir>/<class>/**` like torchvision's `ImageFolder`: classes are the sorted subdirectory
 * names, labels their indices, files sorted within each class. Fails on a missing directory, a
 * directory without class folders, or a class folder without images.
 */
export async function scanImageFolder(dir: string): Promise<ClassFolders> {
  const classes = await listClassFolders(dir);
  const perClass = new Array<string[]>(classes.length);
  for (let start = 0; start < classes.length; start += PARALLEL_READS) {
    const chunk = classes.slice(start, start + PARALLEL_READS);
    const lists = await Promise.all(chunk.map((name) => listImages(join(dir, name), `${name}/`)));
    lists.forEach((list, k) => (perClass[start + k] = list));
  }
  let total = 0;
  perClass.forEach((list, label) => {
    if (list.length === 0) {
      const path = join(dir, classes[label]!);
      throw new DatasetError(
        `Expected image files in class folder ${path} (class '${classes[label]}', label ${label}), ` +
          `found none. Image files end in ${IMAGE_EXTENSIONS.join(', ')} (any case).`,
        path,
      );
    }
    total += list.length;
  });
  const files = new Array<string>(total);
  const labels = new Int32Array(total);
  let at = 0;
  perClass.forEach((list, label) => {
    for (const file of list) {
      files[at] = file;
      labels[at++] = label;
    }
  });
  return { root: dir, classes, files, labels, sources: [dir, ...classes.map((c) => join(dir, c))] };
}

/** The sorted names of the subdirectories of `dir`; fails when `dir` is not a directory or has none. */
export async function listClassFolders(dir: string): Promise<string[]> {
  const info = await statOrUndefined(dir);
  if (!info) {
    throw new DatasetError(`Expected a dataset directory at ${dir}, found nothing there.`, dir);
  }
  if (!info.isDirectory()) {
    throw new DatasetError(
      `Expected a dataset directory at ${dir}, found a file. Pass the directory that holds ` +
        `one folder per class (for ImageNet, the folder that holds train/ and val/).`,
      dir,
    );
  }
  const entries = await readdir(dir, { withFileTypes: true });
  const classes: string[] = [];
  for (const e of entries) {
    // A symbolic link counts when it leads to a directory, as os.walk(followlinks=True) has it.
    const linked = e.isSymbolicLink() && (await statOrUndefined(join(dir, e.name)))?.isDirectory();
    if (e.isDirectory() || linked) classes.push(e.name);
  }
  classes.sort(byCodePoint);
  if (classes.length === 0) {
    throw new DatasetError(
      `Expected one folder per class in ${dir} (like train/n01440764/*.JPEG), found ` +
        `${entries.length === 0 ? 'an empty directory' : `no folders among ${entries.length} entries`}.`,
      dir,
    );
  }
  return classes;
}
