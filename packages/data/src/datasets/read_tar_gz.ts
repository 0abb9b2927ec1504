import { gunzipSync } from 'node:zlib';

/**
 * The regular files of a gzipped tar archive (ustar, GNU or PAX), by path. Throws an `Error`
 * saying what is wrong for data that is not gzip or not tar.
 */
export function readTarGz(bytes: Uint8Array): Map<string, Uint8Array> {
  let tar: Uint8Array;
  try {
    tar = gunzipSync(bytes);
  } catch (error) {
    throw new Error(`data that does not gunzip: ${(error as Error).message}`);
  }
  const files = new Map<string, Uint8Array>();
  let longName: string | undefined;
  for (let at = 0; at + 512 <= tar.length;) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break; // end of archive
    const size = parseInt(text(header, 124, 12).trim() || '0', 8);
    const sum = parseInt(text(header, 148, 8).trim(), 8);
    let check = 0;
    for (let k = 0; k < 512; k++) check += k >= 148 && k < 156 ? 32 : header[k]!;
    if (!Number.isFinite(size) || sum !== check) {
      throw new Error(`no tar header at byte ${at} of the unzipped archive`);
    }
    const type = String.fromCharCode(header[156]!);
    const data = tar.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = text(data, 0, data.length); // GNU: the next entry's name
      continue;
    }
    if (type === 'x') {
      // PAX: "<length> path=<name>\n" records for the next entry.
      const path = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(new TextDecoder().decode(data));
      if (path) longName = path[1];
      continue;
    }
    const prefix = text(header, 345, 155);
    const name = longName ?? (prefix ? `${prefix}/` : '') + text(header, 0, 100);
    longName = undefined;
    if (type === '0' || type === '\0') files.set(name.replace(/^\.\//, ''), data);
  }
  return files;
}

/** A NUL-terminated field. */
function text(bytes: Uint8Array, start: number, length: number): string {
  const field = bytes.subarray(start, start + length);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}
