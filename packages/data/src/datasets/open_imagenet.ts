import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { DatasetError } from './dataset_error.js';
import type { ImageDataset } from './image_dataset.js';
import { isImageFile } from './image_extensions.js';
import { readIndexCache, writeIndexCache } from './index_cache.js';
import { byCodePoint } from './list_images.js';
import {
  DEVKIT_ARCHIVE,
  DEVKIT_DIR,
  DEVKIT_GROUND_TRUTH,
  findDevkit,
  readDevkitGroundTruth,
  readDevkitMeta,
  type Devkit,
  type DevkitMeta,
} from './read_devkit.js';
import { readSynsetWords } from './read_synset_words.js';
import { readValGroundTruth, VAL_GROUND_TRUTH_FILES } from './read_val_ground_truth.js';
import { listClassFolders, scanImageFolder } from './scan_image_folder.js';
import { statOrUndefined } from './stat_or_undefined.js';

/** Synset words files looked for in the dataset root, in this order. */
export const SYNSET_WORDS_FILES: readonly string[] = [
  'LOC_synset_mapping.txt',
  'synset_words.txt',
  'words.txt',
];

export interface OpenImageNetOptions {
  /** Which split directory to read: `'train'` (default), `'val'`, or another folder name. */
  split?: string;
  /** An index file, read when up to date and written after a scan (see `openImageFolder`). */
  cache?: string;
  /**
   * The ILSVRC2012 devkit folder (`ILSVRC2012_devkit_t12`, or its `data/`) or its archive
   * (`ILSVRC2012_devkit_t12.tar.gz`), for a flat `val/`'s labels
   * (`ILSVRC2012_validation_ground_truth.txt` through `meta.mat`) and class names. Default
   * `<root>/ILSVRC2012_devkit_t12`, else `<root>/ILSVRC2012_devkit_t12.tar.gz`, when there.
   */
  devkit?: string;
}

/**
 * Opens an ILSVRC2012 split: `<root>/<split>/<wnid>/*.JPEG`, or Kaggle's
 * `<root>/ILSVRC/Data/CLS-LOC/<split>/`. A flat `val/` takes its labels from
 * `LOC_val_solution.csv` or `imagenet_2012_validation_synset_labels.txt` in the root, or from the
 * devkit's `ILSVRC2012_validation_ground_truth.txt` and `meta.mat`. Labels are the sorted wnid
 * order; class names come from a synset words file in the root, or else the devkit's `meta.mat`.
 */
export async function openImageNet(
  root: string,
  options: OpenImageNetOptions = {},
): Promise<ImageDataset> {
  const split = options.split ?? 'train';
  const top = resolve(root);
  const devkitDir = options.devkit === undefined ? undefined : resolve(options.devkit);
  const key = `imagenet:${top}:${split}:${devkitDir ?? ''}`;
  if (options.cache) {
    const cached = await readIndexCache(options.cache, key);
    if (cached) return cached;
  }
  const base = await findSplitParent(top, split);
  const splitDir = join(base, split);
  const words = await findSynsetWords(top);
  const devkit = devkitDir
    ? await findDevkit(devkitDir, true)
    : ((await findDevkit(join(top, DEVKIT_DIR), false)) ??
      (await findDevkit(join(top, DEVKIT_ARCHIVE), false)));
  const meta = devkit
    ? await readDevkitMeta(devkit.meta, await devkit.readFile('meta'))
    : undefined;
  const sources = [splitDir, ...(words ? [words] : []), ...(devkit?.sources ?? [])];
  const entries = await readdir(splitDir, { withFileTypes: true });
  let dataset: Omit<ImageDataset, 'classNames'>;
  if (entries.some((e) => e.isDirectory() || e.isSymbolicLink())) {
    const scan = await scanImageFolder(splitDir);
    sources.push(...scan.sources);
    dataset = scan;
  } else {
    const labels = await findValLabels(top, devkitDir !== undefined, devkit, meta);
    const flat = await readFlatSplit(
      top,
      base,
      splitDir,
      entries.map((e) => e.name),
      labels,
      meta ? [...meta.words.keys()] : undefined,
    );
    sources.push(...(labels?.sources ?? []), join(base, 'train'));
    dataset = flat;
  }
  const names = words ? await readSynsetWords(words) : meta?.words;
  const result: ImageDataset = {
    root: dataset.root,
    classes: dataset.classes,
    classNames: names ? dataset.classes.map((c) => names.get(c) ?? c) : undefined,
    files: dataset.files,
    labels: dataset.labels,
  };
  if (options.cache) await writeIndexCache(options.cache, key, sources, result);
  return result;
}

async function findSplitParent(top: string, split: string): Promise<string> {
  const info = await statOrUndefined(top);
  if (!info?.isDirectory()) {
    throw new DatasetError(
      `Expected an ImageNet directory (holding train/ and val/) at ${top}, found ` +
        `${info ? 'a file' : 'nothing'}.`,
      top,
    );
  }
  for (const base of [top, join(top, 'ILSVRC', 'Data', 'CLS-LOC')]) {
    if ((await statOrUndefined(join(base, split)))?.isDirectory()) return base;
  }
  const found = (await readdir(top)).sort(byCodePoint);
  throw new DatasetError(
    `Expected the split '${split}' at ${join(top, split)}, found no such directory; ${top} ` +
      `holds: ${found.length ? found.slice(0, 10).join(', ') : 'nothing'}.`,
    join(top, split),
  );
}

async function findSynsetWords(top: string): Promise<string | undefined> {
  for (const name of SYNSET_WORDS_FILES) {
    if ((await statOrUndefined(join(top, name)))?.isFile()) return join(top, name);
  }
  return undefined;
}

/** Image id → wnid for a flat split, the files it came from, and how to name them in errors. */
interface ValLabels {
  truth: Map<string, string>;
  sources: string[];
  from: string;
}

/**
 * The labels of a flat `val/`: from the devkit when one was named, else from a ground-truth file
 * in the root, else from the devkit in the root.
 */
async function findValLabels(
  top: string,
  devkitNamed: boolean,
  devkit: Devkit | undefined,
  meta: DevkitMeta | undefined,
): Promise<ValLabels | undefined> {
  const fromDevkit = async (): Promise<ValLabels | undefined> => {
    if (!devkit || !meta) return undefined;
    const besideTop = join(top, DEVKIT_GROUND_TRUTH);
    const inRoot = (await statOrUndefined(besideTop))?.isFile();
    if (!devkit.groundTruth && !inRoot) {
      throw new DatasetError(
        `Expected the devkit's ${DEVKIT_GROUND_TRUTH} beside ${devkit.meta} or in ${top}, ` +
          `found neither.`,
        devkit.sources[0]!,
      );
    }
    const groundTruth = devkit.groundTruth ?? besideTop;
    const bytes = devkit.groundTruth ? await devkit.readFile('groundTruth') : undefined;
    return {
      truth: await readDevkitGroundTruth(groundTruth, meta, devkit.meta, bytes),
      sources: devkit.groundTruth ? [...devkit.sources] : [besideTop, ...devkit.sources],
      from: `${groundTruth} through ${devkit.meta}`,
    };
  };
  if (devkitNamed) return fromDevkit();
  for (const name of VAL_GROUND_TRUTH_FILES) {
    const path = join(top, name);
    if ((await statOrUndefined(path))?.isFile()) {
      return { truth: await readValGroundTruth(path), sources: [path], from: path };
    }
  }
  return fromDevkit();
}

async function readFlatSplit(
  top: string,
  base: string,
  splitDir: string,
  names: string[],
  labels: ValLabels | undefined,
  devkitWnids: string[] | undefined,
) {
  const files = names.filter(isImageFile).sort(byCodePoint);
  if (files.length === 0) {
    throw new DatasetError(
      `Expected class folders or image files in ${splitDir}, found neither.`,
      splitDir,
    );
  }
  if (!labels) {
    throw new DatasetError(
      `Found ${files.length} images directly in ${splitDir} but no labels for them: expected ` +
        `class folders, one of ${VAL_GROUND_TRUTH_FILES.join(', ')} in ${top}, or the devkit ` +
        `(${join(top, DEVKIT_DIR, 'data')}/meta.mat and ${DEVKIT_GROUND_TRUTH}, or the devkit option).`,
      splitDir,
    );
  }
  const { truth, from } = labels;
  const train = join(base, 'train');
  const classes = (await statOrUndefined(train))?.isDirectory()
    ? await listClassFolders(train)
    : (devkitWnids ?? [...new Set(truth.values())]).sort(byCodePoint);
  const labelOf = new Map(classes.map((c, i) => [c, i]));
  const out = new Int32Array(files.length);
  files.forEach((file, i) => {
    const id = file.slice(0, file.lastIndexOf('.'));
    const wnid = truth.get(id);
    const label = wnid === undefined ? undefined : labelOf.get(wnid);
    if (label === undefined) {
      throw new DatasetError(
        wnid === undefined
          ? `Expected a label for ${join(splitDir, file)} in ${from}, found no line for '${id}' ` +
              `(${truth.size} labels there).`
          : `Expected the class '${wnid}' of ${join(splitDir, file)} (from ${from}) among ` +
              `the ${classes.length} train classes, found it missing.`,
        join(splitDir, file),
      );
    }
    out[i] = label;
  });
  return { root: splitDir, classes, files, labels: out };
}
