import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { DatasetError, openImageNet, readDevkitMeta, readMatFile } from '../dist/index.js';
import { tempTree } from './temp_tree.js';

/**
 * The fixtures come from fixtures/devkit/make_devkit.py (scipy.io.savemat): a devkit-shaped
 * meta.mat, compressed and not, its validation ground truth, and what torchvision 0.14's own
 * devkit parser makes of them (expected.json).
 */
const fixtures = fileURLToPath(new URL('./fixtures/devkit/', import.meta.url));
const expected = JSON.parse(await readFile(join(fixtures, 'expected.json'), 'utf8')) as {
  classes: string[];
  classNames: string[];
  valWnids: string[];
  valLabels: number[];
};

const tree = tempTree('thor-ts-data-devkit-');

const touch = tree.touch;

const valFiles = expected.valLabels.map(
  (_, k) => `val/ILSVRC2012_val_${String(k + 1).padStart(8, '0')}.JPEG`,
);

/** An ImageNet root with train/<wnid>/, a flat val/ and the devkit's files under `devkit`. */
async function imagenetWithDevkit(meta: string, devkit = 'ILSVRC2012_devkit_t12/data') {
  await touch(...expected.classes.map((w) => `train/${w}/${w}_1.JPEG`), ...valFiles);
  await mkdir(join(tree.dir, devkit), { recursive: true });
  await copyFile(join(fixtures, meta), join(tree.dir, devkit, 'meta.mat'));
  await copyFile(
    join(fixtures, 'ILSVRC2012_validation_ground_truth.txt'),
    join(tree.dir, devkit, 'ILSVRC2012_validation_ground_truth.txt'),
  );
}

describe('readMatFile (MATLAB 5.0 MAT-files)', () => {
  it('reads the synsets struct array the same from compressed and uncompressed files', async () => {
    for (const name of ['meta.mat', 'meta_uncompressed.mat']) {
      const synsets = readMatFile(await readFile(join(fixtures, name))).get('synsets');
      if (synsets?.kind !== 'struct') throw new Error(`${name}: synsets is ${synsets?.kind}`);
      // make_devkit.py's SYNSETS: 7 synsets in a column; the 6th (dog) has children 2, 3, 4.
      expect([name, ...synsets.dims]).toEqual([name, 7, 1]);
      expect(synsets.fields).toContain('ILSVRC2012_ID');
      const dog = synsets.elements[5]!;
      expect(dog.get('WNID')).toEqual({ kind: 'char', dims: [1, 9], text: 'n02084071' });
      const children = dog.get('children');
      expect(children?.kind === 'numeric' && Array.from(children.data)).toEqual([2, 3, 4]);
      // UTF-8 text survives (the tench's gloss holds 'café').
      const gloss = synsets.elements[4]!.get('gloss');
      expect(gloss?.kind === 'char' && gloss.text).toMatch(/café waters\)$/);
    }
  });

  it('maps leaf ILSVRC2012_IDs to wnids and words, as torchvision parses meta.mat', async () => {
    const meta = await readDevkitMeta(join(fixtures, 'meta.mat'));
    // Leaves only: IDs 6 and 7 have children.
    expect([...meta.wnidOfId.keys()].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(meta.wnidOfId.get(1)).toBe('n02119789');
    expect(expected.classes.map((w) => meta.words.get(w))).toEqual(expected.classNames);
  });
});

describe('openImageNet with the ILSVRC2012 devkit', () => {
  for (const meta of ['meta.mat', 'meta_uncompressed.mat']) {
    it(`labels a flat val/ from the ground truth through ${meta}, like torchvision's ImageNet`, async () => {
      await imagenetWithDevkit(meta);
      const val = await openImageNet(tree.dir, { split: 'val' });
      expect(val.classes).toEqual(expected.classes);
      expect(val.files).toEqual(valFiles.map((f) => f.slice('val/'.length)));
      expect(Array.from(val.labels)).toEqual(expected.valLabels);
      // Without a synset words file, class names come from meta.mat's words.
      expect(val.classNames).toEqual(expected.classNames);
      const train = await openImageNet(tree.dir);
      expect(train.classNames).toEqual(expected.classNames);
    });
  }

  it('finds the devkit given by option, and numbers classes from meta.mat without train/', async () => {
    await imagenetWithDevkit('meta.mat', 'elsewhere/devkit/data');
    await rm(join(tree.dir, 'train'), { recursive: true });
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      /but no labels for them/,
    );
    for (const devkit of ['elsewhere/devkit', 'elsewhere/devkit/data']) {
      const val = await openImageNet(tree.dir, { split: 'val', devkit: join(tree.dir, devkit) });
      expect(val.classes).toEqual(expected.classes);
      expect(Array.from(val.labels)).toEqual(expected.valLabels);
    }
  });

  it('says what it expected of a wrong or mismatched meta.mat and ground truth', async () => {
    await imagenetWithDevkit('meta.mat');
    const data = join(tree.dir, 'ILSVRC2012_devkit_t12', 'data');
    const meta = join(data, 'meta.mat');
    const truth = join(data, 'ILSVRC2012_validation_ground_truth.txt');

    // A ground truth holding an ID meta.mat does not have (and one that is not a number).
    await writeFile(truth, '5\n1\n3\n2\n4\n1\n5\n2\n3\n1000\n');
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      `Expected an ILSVRC2012_ID (1–5, the leaf synsets of ${meta}) on line 10 of ${truth}, found '1000'.`,
    );
    await writeFile(truth, 'n01440764\n');
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      /on line 1 .*, found 'n01440764'\./,
    );

    // A ground truth shorter than val/.
    await writeFile(truth, '5\n1\n');
    const error = await openImageNet(tree.dir, { split: 'val' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as DatasetError).message).toBe(
      `Expected a label for ${join(tree.dir, valFiles[2]!)} in ${truth} through ${meta}, found no ` +
        `line for 'ILSVRC2012_val_00000003' (2 labels there).`,
    );
    await copyFile(join(fixtures, 'ILSVRC2012_validation_ground_truth.txt'), truth);

    // A meta.mat from another dataset: its classes are not train/'s.
    await rm(join(tree.dir, 'train', expected.classes[0]!), { recursive: true });
    await touch('train/n99999999/x.JPEG');
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      `Expected the class 'n01440764' of ${join(tree.dir, valFiles[0]!)} (from ${truth} through ` +
        `${meta}) among the 5 train classes, found it missing.`,
    );

    // Not a MAT-file, a MAT-file without synsets, a MATLAB 7.3 (HDF5) file.
    await writeFile(meta, '5\n1\n3\n'.repeat(50));
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      `Expected the ILSVRC2012 devkit's meta.mat (a MATLAB 5.0 MAT-file holding the struct array ` +
        `'synsets' with fields ILSVRC2012_ID, WNID, words and num_children) at ${meta}, found a ` +
        `file whose header starts '5?1?3?5?1?3?5?1?3?5?1?3?'.`,
    );
    const fixture = await readFile(join(fixtures, 'meta_uncompressed.mat'));
    // Rename the variable: the name 'synsets' is stored once, in the matrix element's name.
    const renamed = Buffer.from(fixture.toString('latin1').replace('synsets', 'classes'), 'latin1');
    await writeFile(meta, renamed);
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      /at .*meta\.mat, found the variables classes\.$/,
    );
    const hdf5 = Buffer.alloc(512);
    hdf5.write('MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5');
    await writeFile(meta, hdf5);
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      /found a MATLAB 7\.3 \(HDF5\) MAT-file; save it with -v7/,
    );
    // A devkit option that points at nothing like a devkit.
    await expect(
      openImageNet(tree.dir, { split: 'val', devkit: join(tree.dir, 'train') }),
    ).rejects.toThrow(
      `Expected the ILSVRC2012 devkit (ILSVRC2012_devkit_t12/data/meta.mat, or ` +
        `ILSVRC2012_devkit_t12.tar.gz) at ${join(tree.dir, 'train')}, found a folder holding ` +
        `n02096294, n02100735, n02110185, n02119789, n99999999.`,
    );
  });

  it('reads the devkit from ILSVRC2012_devkit_t12.tar.gz without unpacking it', async () => {
    // The archive (GNU tar, from make_devkit.py) holds meta.mat and the ground truth under
    // ILSVRC2012_devkit_t12/data/; in the root it is found, elsewhere it is named.
    await imagenetWithDevkit('meta.mat', 'unused');
    await rm(join(tree.dir, 'unused'), { recursive: true });
    const archive = join(tree.dir, 'ILSVRC2012_devkit_t12.tar.gz');
    await copyFile(join(fixtures, 'ILSVRC2012_devkit_t12.tar.gz'), archive);
    const val = await openImageNet(tree.dir, { split: 'val' });
    expect(Array.from(val.labels)).toEqual(expected.valLabels);
    expect(val.classNames).toEqual(expected.classNames);
    const moved = join(tree.dir, 'kit.tgz');
    await copyFile(archive, moved);
    await rm(archive);
    const named = await openImageNet(tree.dir, { split: 'val', devkit: moved });
    expect(Array.from(named.labels)).toEqual(expected.valLabels);

    // Not gzip; a tar.gz without meta.mat.
    await writeFile(moved, 'not gzip');
    await expect(openImageNet(tree.dir, { split: 'val', devkit: moved })).rejects.toThrow(
      new RegExp(
        `^Expected the ILSVRC2012 devkit archive \\(a \\.tar\\.gz holding ` +
          `ILSVRC2012_devkit_t12/data/meta\\.mat\\) at ${moved.replace(/[.]/g, '\\.')}, found data ` +
          `that does not gunzip: `,
      ),
    );
    await writeFile(moved, gzipSync(Buffer.alloc(1024)));
    await expect(openImageNet(tree.dir, { split: 'val', devkit: moved })).rejects.toThrow(
      /, found 0 files without it\.$/,
    );
  });

  it('reads a truncated meta.mat as an error naming it, not as fewer classes', async () => {
    await imagenetWithDevkit('meta_uncompressed.mat');
    const meta = join(tree.dir, 'ILSVRC2012_devkit_t12', 'data', 'meta.mat');
    const whole = await readFile(meta);
    await writeFile(meta, whole.subarray(0, whole.length - 100));
    await expect(openImageNet(tree.dir, { split: 'val' })).rejects.toThrow(
      new RegExp(
        `at ${meta.replace(/[.]/g, '\\.')}, found an element of \\d+ bytes at byte 128 that the file cuts off\\.$`,
      ),
    );
  });
});
