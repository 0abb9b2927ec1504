import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { DatasetError } from './dataset_error.js';
import { byCodePoint } from './list_images.js';
import { MatFileError, readMatFile, type MatValue } from './read_mat_file.js';
import { readTarGz } from './read_tar_gz.js';
import { statOrUndefined } from './stat_or_undefined.js';

/** The folder the ILSVRC2012 devkit (`ILSVRC2012_devkit_t12.tar.gz`) unpacks to. */
export const DEVKIT_DIR = 'ILSVRC2012_devkit_t12';

/** The devkit's validation ground truth: one ILSVRC2012_ID per line, for val image 1, 2, .... */
export const DEVKIT_GROUND_TRUTH = 'ILSVRC2012_validation_ground_truth.txt';

/** The ILSVRC2012 devkit's files, found by {@link findDevkit}, in a folder or in its archive. */
export interface Devkit {
  /** `data/meta.mat` (for an archive, `<archive>:<path inside>`), as errors name it. */
  readonly meta: string;
  /** `data/ILSVRC2012_validation_ground_truth.txt`, when there. */
  readonly groundTruth: string | undefined;
  /** The files to stamp in an index cache: the archive, or meta.mat and the ground truth. */
  readonly sources: readonly string[];
  readFile(which: 'meta' | 'groundTruth'): Promise<Uint8Array>;
}

/** The devkit archive as published (`ILSVRC2012_devkit_t12.tar.gz`). */
export const DEVKIT_ARCHIVE = `${DEVKIT_DIR}.tar.gz`;

/** What `data/meta.mat` says of the 1000 classes (its leaf synsets). */
export interface DevkitMeta {
  /** ILSVRC2012_ID (1–1000) → wnid. */
  readonly wnidOfId: ReadonlyMap<number, string>;
  /** wnid → its `words` (`'tench, Tinca tinca'`). */
  readonly words: ReadonlyMap<string, string>;
}

/**
 * Finds the devkit's `data/meta.mat` (and the validation ground truth beside it) in `dir`, which
 * is the devkit folder, its `data/` folder, or the devkit archive (`.tar.gz`, read without
 * unpacking it). Returns `undefined` when `dir` is absent and `required` is false; otherwise a
 * missing `meta.mat` throws a {@link DatasetError}.
 */
export async function findDevkit(dir: string, required: boolean): Promise<Devkit | undefined> {
  const info = await statOrUndefined(dir);
  if (info?.isFile() && /\.(tar\.gz|tgz)$/i.test(dir)) return openDevkitArchive(dir);
  if (!info && !required) return undefined;
  for (const data of [join(dir, 'data'), dir]) {
    const meta = join(data, 'meta.mat');
    if ((await statOrUndefined(meta))?.isFile()) {
      const truth = join(data, DEVKIT_GROUND_TRUTH);
      const groundTruth = (await statOrUndefined(truth))?.isFile() ? truth : undefined;
      return {
        meta,
        groundTruth,
        sources: [meta, ...(groundTruth ? [groundTruth] : [])],
        readFile: (which) => readFile(which === 'meta' ? meta : (groundTruth ?? truth)),
      };
    }
  }
  const found = info?.isDirectory() ? (await readdir(dir)).sort(byCodePoint) : [];
  throw new DatasetError(
    `Expected the ILSVRC2012 devkit (${DEVKIT_DIR}/data/meta.mat, or ${DEVKIT_ARCHIVE}) at ` +
      `${dir}, found ` +
      (info?.isDirectory()
        ? `a folder holding ${found.length ? found.slice(0, 10).join(', ') : 'nothing'}`
        : info
          ? 'a file'
          : 'nothing') +
      '.',
    dir,
  );
}

/** The devkit from its archive: `<any folder>/data/meta.mat` and the ground truth beside it. */
async function openDevkitArchive(archive: string): Promise<Devkit> {
  let files: Map<string, Uint8Array>;
  try {
    files = readTarGz(await readFile(archive));
  } catch (error) {
    throw new DatasetError(
      `Expected the ILSVRC2012 devkit archive (a .tar.gz holding ${DEVKIT_DIR}/data/meta.mat) ` +
        `at ${archive}, found ${(error as Error).message}.`,
      archive,
    );
  }
  const metaName = [...files.keys()].find((name) => /(^|\/)data\/meta\.mat$/.test(name));
  if (!metaName) {
    const names = [...files.keys()];
    throw new DatasetError(
      `Expected the ILSVRC2012 devkit archive (a .tar.gz holding ${DEVKIT_DIR}/data/meta.mat) ` +
        `at ${archive}, found ${names.length} files without it` +
        (names.length ? ` (${names.slice(0, 5).join(', ')})` : '') +
        '.',
      archive,
    );
  }
  const truthName = metaName.replace(/meta\.mat$/, DEVKIT_GROUND_TRUTH);
  const groundTruth = files.has(truthName) ? `${archive}:${truthName}` : undefined;
  return {
    meta: `${archive}:${metaName}`,
    groundTruth,
    sources: [archive],
    readFile: async (which) =>
      files.get(which === 'meta' ? metaName : truthName) ?? new Uint8Array(0),
  };
}

/**
 * Reads the devkit's `meta.mat` (MATLAB 5.0, compressed or not): the struct array `synsets` with
 * fields `ILSVRC2012_ID`, `WNID`, `words` and `num_children`. Its leaf synsets (no children) are
 * the classes, as torchvision's `parse_meta_mat` has it. `bytes` are the file's, when already read.
 */
export async function readDevkitMeta(path: string, bytes?: Uint8Array): Promise<DevkitMeta> {
  const fail = (found: string) =>
    new DatasetError(
      `Expected the ILSVRC2012 devkit's meta.mat (a MATLAB 5.0 MAT-file holding the struct array ` +
        `'synsets' with fields ILSVRC2012_ID, WNID, words and num_children) at ${path}, found ${found}.`,
      path,
    );
  let variables: Map<string, MatValue>;
  try {
    variables = readMatFile(bytes ?? (await readFile(path)));
  } catch (error) {
    if (error instanceof MatFileError) throw fail(error.message);
    throw error;
  }
  const synsets = variables.get('synsets');
  if (!synsets) {
    const names = [...variables.keys()];
    throw fail(names.length ? `the variables ${names.join(', ')}` : 'no variables');
  }
  if (synsets.kind !== 'struct') throw fail(`'synsets' as a ${synsets.kind} array`);
  const missing = ['ILSVRC2012_ID', 'WNID', 'words'].filter((f) => !synsets.fields.includes(f));
  if (missing.length) {
    throw fail(`'synsets' with the fields ${synsets.fields.join(', ')} (no ${missing.join(', ')})`);
  }
  const wnidOfId = new Map<number, string>();
  const words = new Map<string, string>();
  synsets.elements.forEach((synset, k) => {
    const children = synset.get('num_children');
    if (children?.kind === 'numeric' && children.data[0] !== 0) return;
    const id = synset.get('ILSVRC2012_ID');
    const wnid = synset.get('WNID');
    const text = synset.get('words');
    const ident = id?.kind === 'numeric' && id.data.length === 1 ? id.data[0]! : NaN;
    if (!Number.isInteger(ident) || wnid?.kind !== 'char' || !/^n\d+$/.test(wnid.text)) {
      throw fail(
        `synsets(${k + 1}) with ILSVRC2012_ID ${describe(id)} and WNID ${describe(wnid)}, ` +
          `not an integer and a wnid like n01440764`,
      );
    }
    if (wnidOfId.has(ident)) {
      throw fail(`the ILSVRC2012_ID ${ident} twice (${wnidOfId.get(ident)} and ${wnid.text})`);
    }
    wnidOfId.set(ident, wnid.text);
    words.set(wnid.text, text?.kind === 'char' ? text.text : wnid.text);
  });
  if (wnidOfId.size === 0) throw fail(`'synsets' without leaf synsets (num_children 0)`);
  return { wnidOfId, words };
}

/**
 * Reads the devkit's `ILSVRC2012_validation_ground_truth.txt` (line k holds the ILSVRC2012_ID of
 * `ILSVRC2012_val_0000000k`) through `meta`: image id → wnid. `metaPath` names `meta` in errors;
 * `bytes` are the file's, when already read.
 */
export async function readDevkitGroundTruth(
  path: string,
  meta: DevkitMeta,
  metaPath: string,
  bytes?: Uint8Array,
): Promise<Map<string, string>> {
  const lines = new TextDecoder().decode(bytes ?? (await readFile(path))).split(/\r?\n/);
  while (lines.length && lines[lines.length - 1]!.trim() === '') lines.pop();
  const ids = [...meta.wnidOfId.keys()];
  const range = `${Math.min(...ids)}–${Math.max(...ids)}`;
  const truth = new Map<string, string>();
  lines.forEach((line, k) => {
    const text = line.trim();
    const wnid = /^\d+$/.test(text) ? meta.wnidOfId.get(Number(text)) : undefined;
    if (wnid === undefined) {
      throw new DatasetError(
        `Expected an ILSVRC2012_ID (${range}, the leaf synsets of ${metaPath}) on line ${k + 1} ` +
          `of ${path}, found '${text.slice(0, 80)}'.`,
        path,
      );
    }
    truth.set(`ILSVRC2012_val_${String(k + 1).padStart(8, '0')}`, wnid);
  });
  return truth;
}

function describe(value: MatValue | undefined): string {
  if (!value) return 'missing';
  if (value.kind === 'char') return `'${value.text.slice(0, 40)}'`;
  if (value.kind === 'numeric') return `[${Array.from(value.data.subarray(0, 4)).join(' ')}]`;
  return `a ${value.kind} array`;
}
