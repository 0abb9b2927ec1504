import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { EventFileWriter } from '../dist/index.js';
import { crc32c, maskedCrc32c } from '../src/crc32c.js';
import { tfRecord } from '../src/event_file.js';
import { readEvents, readRecords, referenceCrc32c, referenceMask } from './tfevents.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'thor-ts-events-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const ascii = (s: string) => new TextEncoder().encode(s);

describe('CRC-32C', () => {
  it('matches the check value of the standard and a bit-by-bit reference', () => {
    // "123456789" → 0xe3069283: CRC-32C's check value (RFC 3720, B.4; the CRC catalogue).
    expect(referenceCrc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
    // RFC 3720 B.4's vectors: 32 bytes of zeros → 0x8a9136aa, of 0xff → 0x62a8ab43.
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) % 256);
    expect(crc32c(bytes)).toBe(referenceCrc32c(bytes));
    expect(maskedCrc32c(bytes)).toBe(referenceMask(referenceCrc32c(bytes)));
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it('frames a record as length, masked CRC of the length, data, masked CRC of the data', () => {
    const data = ascii('hello');
    const record = tfRecord(data);
    const view = new DataView(record.buffer);
    expect(record.length).toBe(8 + 4 + 5 + 4);
    expect(view.getBigUint64(0, true)).toBe(5n);
    expect(view.getUint32(8, true)).toBe(referenceMask(referenceCrc32c(record.subarray(0, 8))));
    expect(Buffer.from(record.subarray(12, 17)).toString()).toBe('hello');
    expect(view.getUint32(17, true)).toBe(referenceMask(referenceCrc32c(data)));
  });
});

describe('EventFileWriter', () => {
  it('writes a version event, then scalars at their steps, read back by an independent reader', () => {
    const logdir = join(dir, 'run');
    const writer = new EventFileWriter(logdir);
    writer.scalars(1, { 'train/loss': 2.5, 'train/lr': 0.1, 'train/damping': undefined }, 1000.25);
    // A step past 2^32 takes a five-byte varint; float32 keeps 0.1 as 0.10000000149….
    writer.scalars(2 ** 33 + 5, { 'val/top1': 0.75 }, 1001.5);
    writer.close();
    const name = basename(writer.path);
    expect(readdirSync(logdir)).toEqual([name]);
    // PyTorch's name: events.out.tfevents.<seconds>.<hostname>, here with the pid after it.
    const [, seconds, host] = /^events\.out\.tfevents\.(\d+)\.(.+)$/.exec(name) ?? [];
    expect(Math.abs(Number(seconds) - Date.now() / 1e3)).toBeLessThan(60);
    expect(host).toBe(`${hostname()}.${process.pid}`);

    const events = readEvents(writer.path);
    expect(events).toHaveLength(3);
    expect(events[0]).toMatchObject({ step: 0, fileVersion: 'brain.Event:2', scalars: [] });
    expect(Math.abs(events[0]!.wallTime - Date.now() / 1e3)).toBeLessThan(60);
    expect(events[1]).toEqual({
      wallTime: 1000.25,
      step: 1,
      scalars: [
        ['train/loss', 2.5],
        ['train/lr', Math.fround(0.1)],
      ],
    });
    expect(events[2]).toEqual({
      wallTime: 1001.5,
      step: 2 ** 33 + 5,
      scalars: [['val/top1', 0.75]],
    });
  });

  it('holds events until maxQueue of them, flush or close; a resumed file purges later steps', () => {
    const logdir = join(dir, 'held');
    const first = new EventFileWriter(logdir, { maxQueue: 3, flushSeconds: 3600 });
    // The version event is written at once, so TensorBoard finds the file from the start.
    expect(readRecords(first.path)).toHaveLength(1);
    first.scalars(1, { a: 1 });
    first.scalars(2, { a: 2 });
    expect(readRecords(first.path)).toHaveLength(1);
    first.scalars(3, { a: 3 });
    expect(readRecords(first.path)).toHaveLength(4);
    first.scalars(4, { a: 4 });
    first.flush();
    expect(readRecords(first.path)).toHaveLength(5);
    first.scalars(5, { a: 5 });
    first.close();
    expect(readEvents(first.path).map((e) => e.step)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(() => first.flush()).toThrow('written to after it was closed');

    // Resumed at step 3: a SessionLog START at step 4 (PyTorch's purge_step) after the version.
    const second = new EventFileWriter(logdir, { purgeStep: 4 });
    second.close();
    expect(second.path).not.toBe(first.path);
    expect(readdirSync(logdir).sort().at(-1)).toBe(basename(second.path));
    const events = readEvents(second.path);
    expect(events.map((e) => [e.step, e.fileVersion, e.sessionStatus])).toEqual([
      [0, 'brain.Event:2', undefined],
      [4, undefined, 1],
    ]);
  });
});
