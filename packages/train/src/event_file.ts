import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

import { maskedCrc32c } from './crc32c.js';
import { encodeEvent, type EventFields } from './event_proto.js';

export interface EventFileOptions {
  /**
   * The first step this file logs when a run resumes (PyTorch's `purge_step`): TensorBoard then
   * drops what earlier files of the directory logged from that step on, so a resumed run shows
   * each step once.
   */
  purgeStep?: number;
  /** Events held before they are written (PyTorch's `max_queue`). Default 10. */
  maxQueue?: number;
  /** Seconds after which held events are written at the next one (PyTorch's `flush_secs`). Default 30. */
  flushSeconds?: number;
}

/**
 * A TensorBoard event file of scalars, PyTorch's `SummaryWriter(log_dir).add_scalar` in
 * miniature: `<dir>/events.out.tfevents.<seconds>.<hostname>.<pid>`, a TFRecord of Event protos
 * (a 'brain.Event:2' event first). Events are held a little and written together; `flush` and
 * `close` write them all.
 */
export class EventFileWriter {
  readonly path: string;
  private fd: number | undefined;
  private queue: Uint8Array[] = [];
  private lastFlush = performance.now();
  private readonly maxQueue: number;
  private readonly flushMs: number;

  constructor(dir: string, options: EventFileOptions = {}) {
    this.maxQueue = options.maxQueue ?? 10;
    this.flushMs = (options.flushSeconds ?? 30) * 1e3;
    const file = createFile(dir);
    this.fd = file.fd;
    this.path = file.path;
    this.add({ wallTime: Date.now() / 1e3, step: 0, fileVersion: 'brain.Event:2' });
    if (options.purgeStep !== undefined) {
      this.add({ wallTime: Date.now() / 1e3, step: options.purgeStep, sessionStart: true });
    }
    this.flush();
  }

  /** One event of `values` (tag → value; undefined ones left out) at `step`. */
  scalars(
    step: number,
    values: Record<string, number | undefined>,
    wallTime = Date.now() / 1e3,
  ): void {
    const scalars = Object.entries(values).filter((e): e is [string, number] => e[1] !== undefined);
    if (scalars.length === 0) return;
    this.add({ wallTime, step, scalars });
    if (this.queue.length >= this.maxQueue || performance.now() - this.lastFlush >= this.flushMs) {
      this.flush();
    }
  }

  /** Writes the events held so far. */
  flush(): void {
    if (this.fd === undefined) throw new Error(`${this.path}: written to after it was closed`);
    if (this.queue.length > 0) writeSync(this.fd, Buffer.concat(this.queue));
    this.queue = [];
    this.lastFlush = performance.now();
  }

  close(): void {
    if (this.fd === undefined) return;
    this.flush();
    closeSync(this.fd);
    this.fd = undefined;
  }

  private add(event: EventFields): void {
    this.queue.push(tfRecord(encodeEvent(event)));
  }
}

/**
 * A new file `<dir>/events.out.tfevents.<seconds>.<hostname>.<pid>` (TensorBoard reads the files
 * of a directory in name order); a second one of this process within the same second gets `.1`.
 */
function createFile(dir: string): { fd: number; path: string } {
  mkdirSync(dir, { recursive: true });
  const seconds = Math.floor(Date.now() / 1e3);
  const base = join(dir, `events.out.tfevents.${seconds}.${hostname()}.${process.pid}`);
  for (let n = 0; ; n++) {
    const path = n === 0 ? base : `${base}.${n}`;
    try {
      return { fd: openSync(path, 'wx'), path };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/**
 * TFRecord's framing of one record: its length (uint64, little-endian), the masked CRC-32C of
 * those 8 bytes, the data, and the masked CRC-32C of the data (each uint32, little-endian).
 */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}
