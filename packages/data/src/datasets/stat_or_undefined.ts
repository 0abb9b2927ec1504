import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';

/** `fs.stat`, or `undefined` when nothing is at `path`. */
export async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
