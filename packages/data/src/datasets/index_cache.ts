import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import type { ImageDataset } from './image_dataset.js';
import { statOrUndefined } from './stat_or_undefined.js';

const FORMAT = 'thor-ts-data-index/1';

interface IndexFile {
  format: string;
  key: string;
  sources: [path: string, mtimeMs: number][];
  dataset: {
    root: string;
    classes: string[];
    classNames: string[] | null;
    files: string[];
    labels: number[];
  };
}

/**
 * Reads a dataset index written by {@link writeIndexCache}, or returns `undefined` when the file is
 * absent, was written for another `key`, or any directory or file it was built from has changed
 * since (its modification time differs), so a stale index is never used.
 */
export async function readIndexCache(path: string, key: string): Promise<ImageDataset | undefined> {
  let index: IndexFile;
  try {
    index = JSON.parse(await readFile(path, 'utf8')) as IndexFile;
  } catch {
    return undefined;
  }
  if (index.format !== FORMAT || index.key !== key) return undefined;
  for (const [source, mtimeMs] of index.sources) {
    if ((await statOrUndefined(source))?.mtimeMs !== mtimeMs) return undefined;
  }
  const d = index.dataset;
  return {
    root: d.root,
    classes: d.classes,
    classNames: d.classNames ?? undefined,
    files: d.files,
    labels: Int32Array.from(d.labels),
  };
}

/** Writes `dataset` to `path` (atomically) with the modification times of `sources`. */
export async function writeIndexCache(
  path: string,
  key: string,
  sources: readonly string[],
  dataset: ImageDataset,
): Promise<void> {
  const stamped: [string, number][] = [];
  for (const source of sources) {
    const info = await statOrUndefined(source);
    if (info) stamped.push([source, info.mtimeMs]);
  }
  const index: IndexFile = {
    format: FORMAT,
    key,
    sources: stamped,
    dataset: {
      root: dataset.root,
      classes: [...dataset.classes],
      classNames: dataset.classNames ? [...dataset.classNames] : null,
      files: [...dataset.files],
      labels: Array.from(dataset.labels),
    },
  };
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(index));
  await rename(tmp, path);
}
