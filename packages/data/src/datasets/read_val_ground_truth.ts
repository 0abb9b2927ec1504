import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

import { DatasetError } from './dataset_error.js';

/** The ground-truth files for a flat `val/` directory that are read, in the order they are looked for. */
export const VAL_GROUND_TRUTH_FILES: readonly string[] = [
  'LOC_val_solution.csv',
  'imagenet_2012_validation_synset_labels.txt',
];

/**
 * Reads the ground truth of a flat ImageNet validation directory, as image id (the file name without
 * extension, `ILSVRC2012_val_00000001`) → wnid. Understands Kaggle's `LOC_val_solution.csv`
 * (`ImageId,PredictionString`, the wnid first in each box) and the one-wnid-per-line
 * `imagenet_2012_validation_synset_labels.txt` (line k is `ILSVRC2012_val_0000000k`).
 */
export async function readValGroundTruth(path: string): Promise<Map<string, string>> {
  const lines = (await readFile(path, 'utf8')).split(/\r?\n/).filter((l) => l.trim() !== '');
  const truth = new Map<string, string>();
  if (basename(path).toLowerCase().endsWith('.csv')) {
    lines.forEach((line, k) => {
      if (k === 0 && line.startsWith('ImageId')) return;
      const match = /^([^,]+),\s*(n\d+)/.exec(line);
      if (!match) {
        throw new DatasetError(
          `Expected 'ImageId,wnid x y x y ...' on line ${k + 1} of ${path}, found '${line.slice(0, 80)}'.`,
          path,
        );
      }
      truth.set(match[1]!, match[2]!);
    });
  } else {
    lines.forEach((line, k) => {
      const wnid = line.trim();
      if (!/^n\d+$/.test(wnid)) {
        throw new DatasetError(
          `Expected a wnid like n01440764 on line ${k + 1} of ${path}, found '${wnid.slice(0, 80)}'.`,
          path,
        );
      }
      truth.set(`ILSVRC2012_val_${String(k + 1).padStart(8, '0')}`, wnid);
    });
  }
  return truth;
}
