import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { isImageFile } from './image_extensions.js';

/**
 * The image files under `dir`, relative to it, in torchvision's order: a directory's files sorted by
 * name, then its subdirectories in name order. Names sort by code point, as Python's `sorted` does.
 */
export async function listImages(dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files: string[] = [];
  const subdirs: string[] = [];
  for (const entry of entries) {
    if (entry.isDirectory()) subdirs.push(entry.name);
    else if (isImageFile(entry.name)) files.push(entry.name);
  }
  files.sort(byCodePoint);
  subdirs.sort(byCodePoint);
  const out = files.map((name) => prefix + name);
  for (const sub of subdirs) {
    out.push(...(await listImages(join(dir, sub), `${prefix}${sub}/`)));
  }
  return out;
}

/** Compares strings by code point, like Python's `sorted` (not by locale). */
export function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
