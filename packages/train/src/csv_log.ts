import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';

/** A CSV cell: a number as JavaScript prints it (NaN as NaN), a string quoted if need be, or empty. */
export type Cell = number | string | undefined;

/**
 * A CSV file written a row at a time, as PyTorch Lightning's CSVLogger writes metrics.csv: a
 * header line of column names, then one line per row, each written as it comes.
 */
export class CsvLog {
  private fd: number | undefined;

  /** Starts `path` over with the header and the data lines `kept` (from {@link CsvLog.kept}). */
  constructor(
    readonly path: string,
    readonly columns: readonly string[],
    kept: readonly string[] = [],
  ) {
    this.fd = openSync(path, 'w');
    writeSync(this.fd, [columns.join(','), ...kept].map((l) => `${l}\n`).join(''));
  }

  /**
   * The data lines of an earlier file at `path` that `keep` accepts, given their cells (split at
   * commas: for files of numbers), in `columns`' order. A file whose header has fewer columns, all
   * of them among `columns` (one written before columns were added), has its lines laid out anew,
   * the new columns empty; there is none when there is no file or its header has other columns.
   */
  static kept(
    path: string,
    columns: readonly string[],
    keep: (cells: string[]) => boolean,
  ): string[] {
    if (!existsSync(path)) return [];
    const [header = '', ...lines] = readFileSync(path, 'utf8').split('\n');
    const data = lines.filter((l) => l !== '');
    if (header === columns.join(',')) return data.filter((l) => keep(l.split(',')));
    const old = header.split(',');
    if (!old.every((name) => columns.includes(name))) return [];
    const at = columns.map((name) => old.indexOf(name));
    return data
      .map((l) => {
        const cells = l.split(',');
        return at.map((i) => (i < 0 ? '' : (cells[i] ?? ''))).join(',');
      })
      .filter((l) => keep(l.split(',')));
  }

  /** One row, its cells in the columns' order. */
  row(cells: readonly Cell[]): void {
    if (this.fd === undefined) throw new Error(`${this.path}: written to after it was closed`);
    if (cells.length !== this.columns.length) {
      throw new Error(
        `${this.path}: expected a row of ${this.columns.length} cells (${this.columns.join(', ')}), found ${cells.length}`,
      );
    }
    writeSync(this.fd, `${cells.map(cell).join(',')}\n`);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

function cell(c: Cell): string {
  if (c === undefined) return '';
  if (typeof c === 'number') return String(c);
  return /[",\n\r]/.test(c) ? `"${c.replaceAll('"', '""')}"` : c;
}
