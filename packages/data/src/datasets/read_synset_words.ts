import { readFile } from 'node:fs/promises';

/**
 * Reads a synset words file (`synset_words.txt`, Kaggle's `LOC_synset_mapping.txt` or WordNet's
 * `words.txt`): one `<wnid> <name>` line per class, space or tab separated. Returns wnid → name.
 */
export async function readSynsetWords(path: string): Promise<Map<string, string>> {
  const words = new Map<string, string>();
  for (const line of (await readFile(path, 'utf8')).split(/\r?\n/)) {
    const match = /^(\S+)\s+(.*\S)\s*$/.exec(line);
    if (match) words.set(match[1]!, match[2]!);
  }
  return words;
}
