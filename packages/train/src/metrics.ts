import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { EpochMetrics } from './trainer.js';

/** The metrics a run wrote, one line per evaluation, from `<dir>/metrics.jsonl`. */
export async function readMetrics(dir: string): Promise<EpochMetrics[]> {
  const path = join(dir, 'metrics.jsonl');
  const text = await readFile(path, 'utf8');
  return text
    .split('\n')
    .map((line, i) => [line.trim(), i + 1] as const)
    .filter(([line]) => line.length > 0)
    .map(([line, n]) => {
      try {
        return JSON.parse(line) as EpochMetrics;
      } catch {
        throw new Error(
          `${path}:${n}: expected a JSON object per line, found ${JSON.stringify(line.slice(0, 80))}`,
        );
      }
    });
}
