import { readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { DatasetError, openImageFolder, openImageNet } from '../dist/index.js';
import { tempTree } from './temp_tree.js';

const tree = tempTree('thor-ts-data-scan-');

const touch = tree.touch;

describe('openImageFolder', () => {
  it('labels sorted class folders in code-point order and lists files sorted, like ImageFolder', async () => {
    // 'B' (0x42) sorts before 'a' (0x61), as in Python's sorted(); notes.txt is not an image;
    // files of a nested folder follow the class folder's own files.
    await touch('a/2.jpg', 'a/10.JPEG', 'a/notes.txt', 'B/x.png', 'B/sub/y.webp', 'c/z.jpeg');
    const ds = await openImageFolder(tree.dir);
    expect(ds.classes).toEqual(['B', 'a', 'c']);
    expect(ds.files).toEqual(['B/x.png', 'B/sub/y.webp', 'a/10.JPEG', 'a/2.jpg', 'c/z.jpeg']);
    expect(Array.from(ds.labels)).toEqual([0, 0, 1, 1, 2]);
    expect(ds.root).toBe(tree.dir);
    expect(ds.classNames).toBeUndefined();
  });

  it('names a missing path, a file, a folder without classes and an empty class', async () => {
    await expect(openImageFolder(join(tree.dir, 'nope'))).rejects.toThrow(
      `Expected a dataset directory at ${join(tree.dir, 'nope')}, found nothing there.`,
    );
    await touch('file.jpg');
    await expect(openImageFolder(join(tree.dir, 'file.jpg'))).rejects.toThrow(/found a file/);
    await expect(openImageFolder(tree.dir)).rejects.toThrow(
      `Expected one folder per class in ${tree.dir} (like train/n01440764/*.JPEG), found no folders among 1 entries.`,
    );
    await touch('n01/a.JPEG', 'n02/readme.md');
    const error = await openImageFolder(tree.dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as DatasetError).message).toMatch(
      `Expected image files in class folder ${join(tree.dir, 'n02')} (class 'n02', label 1), found none.`,
    );
    expect((error as DatasetError).path).toBe(join(tree.dir, 'n02'));
  });

  it('reuses an up-to-date index file and rescans when a class folder changes', async () => {
    await touch('ds/a/1.jpg', 'ds/b/1.jpg');
    const ds = join(tree.dir, 'ds');
    const cache = join(tree.dir, 'cache', 'index.json');
    const first = await openImageFolder(ds, { cache });
    expect(first.files).toEqual(['a/1.jpg', 'b/1.jpg']);
    // Edit the index: when it is read back, the edited class list shows it was used.
    const index = JSON.parse(await readFile(cache, 'utf8'));
    index.dataset.classes = ['from-cache', 'b'];
    await writeFile(cache, JSON.stringify(index));
    expect((await openImageFolder(ds, { cache })).classes).toEqual(['from-cache', 'b']);
    // A new file changes b/'s modification time (set explicitly, whatever the clock's grain).
    await touch('ds/b/2.jpg');
    await utimes(join(ds, 'b'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    const rescanned = await openImageFolder(ds, { cache });
    expect(rescanned.classes).toEqual(['a', 'b']);
    expect(rescanned.files).toEqual(['a/1.jpg', 'b/1.jpg', 'b/2.jpg']);
  });
});

describe('openImageNet', () => {
  const train = ['train/n02/a.JPEG', 'train/n01/b.JPEG', 'train/n03/c.JPEG'];

  it('reads train and val class folders, with names from synset_words.txt', async () => {
    await touch(...train, 'val/n01/v1.JPEG', 'val/n03/v2.JPEG', 'val/n02/v3.JPEG');
    await writeFile(join(tree.dir, 'synset_words.txt'), 'n01 tench, Tinca tinca\nn02 goldfish\n');
    const ds = await openImageNet(tree.dir);
    expect(ds.root).toBe(join(tree.dir, 'train'));
    expect(ds.files).toEqual(['n01/b.JPEG', 'n02/a.JPEG', 'n03/c.JPEG']);
    // n03 has no line in the words file: its wnid stands in for the name.
    expect(ds.classNames).toEqual(['tench, Tinca tinca', 'goldfish', 'n03']);
    const val = await openImageNet(tree.dir, { split: 'val' });
    expect(val.files).toEqual(['n01/v1.JPEG', 'n02/v3.JPEG', 'n03/v2.JPEG']);
    expect(Array.from(val.labels)).toEqual([0, 1, 2]);
  });

  it("labels a flat val/ from Kaggle's LOC_val_solution.csv in the ILSVRC/Data/CLS-LOC layout", async () => {
    const cls = 'ILSVRC/Data/CLS-LOC/';
    await touch(...train.map((t) => cls + t));
    await touch(`${cls}val/ILSVRC2012_val_00000002.JPEG`, `${cls}val/ILSVRC2012_val_00000001.JPEG`);
    await writeFile(
      join(tree.dir, 'LOC_val_solution.csv'),
      'ImageId,PredictionString\n' +
        'ILSVRC2012_val_00000002,n01 1 2 3 4 n01 5 6 7 8\n' +
        'ILSVRC2012_val_00000001,n03 10 20 30 40\n',
    );
    await writeFile(
      join(tree.dir, 'LOC_synset_mapping.txt'),
      'n01 tench\nn02 goldfish\nn03 shark\n',
    );
    const val = await openImageNet(tree.dir, { split: 'val' });
    expect(val.root).toBe(join(tree.dir, cls, 'val'));
    expect(val.files).toEqual(['ILSVRC2012_val_00000001.JPEG', 'ILSVRC2012_val_00000002.JPEG']);
    // n03 is the third sorted train wnid (label 2), n01 the first (label 0).
    expect(Array.from(val.labels)).toEqual([2, 0]);
    expect(val.classNames).toEqual(['tench', 'goldfish', 'shark']);
  });

  it('labels a flat val/ from imagenet_2012_validation_synset_labels.txt (line k is image k)', async () => {
    await touch(...train, 'val/ILSVRC2012_val_00000001.JPEG', 'val/ILSVRC2012_val_00000002.JPEG');
    await writeFile(join(tree.dir, 'imagenet_2012_validation_synset_labels.txt'), 'n02\nn01\n');
    const val = await openImageNet(tree.dir, { split: 'val' });
    expect(Array.from(val.labels)).toEqual([1, 0]);
  });

  it('says what is missing: a split, val labels, a val image without a line', async () => {
    await touch(...train);
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      `Expected the split 'val' at ${join(tree.dir, 'val')}, found no such directory; ${tree.dir} holds: train.`,
    );
    await touch('val/ILSVRC2012_val_00000001.JPEG', 'val/ILSVRC2012_val_00000003.JPEG');
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      `Found 2 images directly in ${join(tree.dir, 'val')} but no labels for them: expected class ` +
        `folders, one of LOC_val_solution.csv, imagenet_2012_validation_synset_labels.txt in ` +
        `${tree.dir}, or the devkit (${join(tree.dir, 'ILSVRC2012_devkit_t12', 'data')}/meta.mat and ` +
        `ILSVRC2012_validation_ground_truth.txt, or the devkit option).`,
    );
    const labels = join(tree.dir, 'imagenet_2012_validation_synset_labels.txt');
    await writeFile(labels, 'n02\nn01\n');
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      `Expected a label for ${join(tree.dir, 'val', 'ILSVRC2012_val_00000003.JPEG')} in ${labels}, ` +
        `found no line for 'ILSVRC2012_val_00000003' (2 labels there).`,
    );
  });
});
