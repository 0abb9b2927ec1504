import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  centerCrop,
  DataLoader,
  decodePending,
  IMAGENET_MEAN,
  IMAGENET_STD,
  imagenetEvalTransforms,
  imagenetTrainTransforms,
  normalizationTable,
  openImageFolder,
  planView,
  Random,
  resize,
  syntheticJpeg,
  type Batch,
  type Transform,
} from '../dist/index.js';
import { pillowResize } from '../dist/decode/decode_image.js';
import { WASM_JPEG_STATUS, WasmJpeg } from '../dist/decode/wasm_jpeg.js';
import { hasWasmToolchain, rebuildsCommittedWasm } from '../../../wasm_build_check.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(packageDir, 'test', 'fixtures', 'jpeg');
const table = normalizationTable({ mean: IMAGENET_MEAN, std: IMAGENET_STD });

/** A noisy gradient (every DCT coefficient gets used) as raw RGB, for sharp to encode. */
function noisyImage(width: number, height: number, seed: number) {
  const random = new Random(seed);
  const data = new Uint8ClampedArray(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const base = [(x * 255) / width, (y * 255) / height, ((x + y) * 127) / (width + height)];
      for (let c = 0; c < 3; c++)
        data[(y * width + x) * 3 + c] = base[c]! + (random.next() - 0.5) * 80;
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } });
}

/** Baseline JPEGs of several sizes, qualities and samplings, and the fixtures sharp cannot make. */
async function baselineJpegs(): Promise<[string, Buffer][]> {
  const files: [string, Buffer][] = [];
  for (const [width, height] of [
    [500, 375],
    [333, 257],
    [17, 9],
    [8, 8],
    [250, 499],
  ] as const) {
    for (const chromaSubsampling of ['4:2:0', '4:4:4']) {
      for (const quality of [30, 90, 100]) {
        const jpeg = await noisyImage(width, height, quality)
          .jpeg({ quality, chromaSubsampling })
          .toBuffer();
        files.push([`${width}×${height} ${chromaSubsampling} q${quality}`, jpeg]);
      }
    }
    const gray = await noisyImage(width, height, 5).grayscale().jpeg({ quality: 80 }).toBuffer();
    files.push([`${width}×${height} grayscale`, gray]);
  }
  for (const name of [
    'restart-3-mcus.jpg',
    'h2v1-restart-1-row.jpg',
    'h2v1.jpg',
    'gray-restart-2-mcus.jpg',
  ]) {
    files.push([name, readFileSync(join(fixtures, name))]);
  }
  return files;
}

/** Whether two float arrays hold the same bits (faster than a deep equality on large arrays). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  const bytes = (f: Float32Array) => Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  return bytes(a).equals(bytes(b));
}

async function sharpRgb(bytes: Buffer) {
  const { data, info } = await sharp(bytes)
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

describe('WasmJpeg', () => {
  it.skipIf(!hasWasmToolchain())(
    'is what scripts/build-wasm.sh builds from csrc/ (needs clang and lld)',
    () => {
      const committed = join(packageDir, 'wasm', 'jpeg.wasm');
      expect(rebuildsCommittedWasm(packageDir, committed)).toBe(true);
    },
  );

  it('decodes baseline JPEGs to the bytes libjpeg-turbo gives sharp, in any window', async () => {
    const decoder = new WasmJpeg(table);
    const random = new Random(3);
    for (const [name, bytes] of await baselineJpegs()) {
      const expected = await sharpRgb(bytes);
      const { width, height } = expected;
      const whole = decoder.decodeRegion(bytes, 0, 0, width, height);
      expect(typeof whole, name).not.toBe('number');
      expect(Buffer.from(whole as Uint8Array).equals(expected.data), name).toBe(true);
      for (let t = 0; t < 4; t++) {
        const left = Math.floor(random.next() * width);
        const top = Math.floor(random.next() * height);
        const w = 1 + Math.floor(random.next() * (width - left));
        const h = 1 + Math.floor(random.next() * (height - top));
        const window = decoder.decodeRegion(bytes, left, top, w, h) as Uint8Array;
        for (let y = 0; y < h; y++) {
          const row = expected.data.subarray(
            ((top + y) * width + left) * 3,
            ((top + y) * width + left + w) * 3,
          );
          expect(
            Buffer.from(window.subarray(y * w * 3, (y + 1) * w * 3)).equals(row),
            `${name} row ${y} of ${w}×${h} at (${left}, ${top})`,
          ).toBe(true);
        }
      }
    }
  });

  it("gives torchvision's crops: what sharp and Pillow's filter give, to the bit", async () => {
    const decoder = new WasmJpeg(table);
    const bytes = await syntheticJpeg(1, 4, 7);
    const pipelines: Transform[][] = [
      imagenetTrainTransforms(224),
      imagenetTrainTransforms(160),
      imagenetEvalTransforms(224, 256),
      [resize(300), centerCrop(224)],
      [centerCrop(200)],
    ];
    let compared = 0;
    for (const [p, transforms] of pipelines.entries()) {
      for (let i = 0; i < 12; i++) {
        const view = await planView(bytes, transforms, Random.forSample(p, 0, i));
        const plan = pillowResize(view);
        if (!plan) continue; // shrunk 2× or more: sharp's own resize
        const ours = decoder.cropResize(bytes, plan, view.flip);
        expect(typeof ours).not.toBe('number');
        const pending = await decodePending(bytes, transforms, Random.forSample(p, 0, i));
        const expected = new Float32Array(view.width * view.height * 3);
        pending.writeNormalized(table, expected, 0);
        expect(sameBits(ours as Float32Array, expected), `pipeline ${p}, sample ${i}`).toBe(true);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(50);
  });

  it('hands back what it does not decode, with the reason, for sharp to decode or report', async () => {
    const decoder = new WasmJpeg(table);
    const image = noisyImage(64, 48, 1);
    const status = (bytes: Uint8Array) =>
      WASM_JPEG_STATUS[decoder.decodeRegion(bytes, 0, 0, 1, 1) as number];
    expect(status(await image.clone().jpeg({ progressive: true }).toBuffer())).toBe('unsupported');
    expect(status(await image.clone().toColourspace('cmyk').jpeg().toBuffer())).toBe('unsupported');
    expect(status(readFileSync(join(fixtures, 'arithmetic.jpg')))).toBe('unsupported');
    expect(status(await image.clone().png().toBuffer())).toBe('unsupported');
    expect(status(await noisyImage(1, 1, 1).jpeg().toBuffer())).toBe('unsupported'); // 1 chroma sample
    const whole = await image.clone().jpeg().toBuffer();
    expect(status(whole.subarray(0, whole.length >> 1))).toBe('corrupt');
    expect(status(whole.subarray(0, 200))).toBe('corrupt'); // headers cut short
    expect(WASM_JPEG_STATUS[decoder.decodeRegion(whole, 60, 0, 8, 8) as number]).toBe(
      'bad request',
    );
    // A header claiming 60000×60000 pixels over a few hundred bytes, without its end-of-image
    // marker (so every row is to be read): damaged, as the data runs out; and the whole image is
    // refused for its size, not given a buffer sized by wrapped-around arithmetic.
    const huge = Buffer.from(whole.subarray(0, whole.length - 2));
    const sof = huge.indexOf(Buffer.from([0xff, 0xc0]));
    huge.writeUInt16BE(60000, sof + 5);
    huge.writeUInt16BE(60000, sof + 7);
    expect(status(huge)).toBe('corrupt');
    expect(WASM_JPEG_STATUS[decoder.decodeRegion(huge, 0, 0, 60000, 60000) as number]).toBe(
      'out of memory',
    );
  });
});

describe('WasmJpeg on files damaged outside the window', () => {
  it('refuses what sharp refuses whatever the window, and decodes what sharp decodes', async () => {
    const decoder = new WasmJpeg(table);
    // 64×256: the top 8×8 window lies far above any damage near the end of the data.
    const whole = await noisyImage(64, 256, 4).jpeg({ quality: 90 }).toBuffer();
    const eoi = Buffer.from([0xff, 0xd9]);
    const body = whole.subarray(0, whole.length - 2);
    const files: [string, Buffer, 'ok' | 'corrupt'][] = [
      ['whole', whole, 'ok'],
      [
        'data cut short, end marker kept',
        Buffer.concat([whole.subarray(0, Math.floor(whole.length * 0.8)), eoi]),
        'corrupt',
      ],
      ['no end-of-image marker', body, 'corrupt'],
      [
        'bytes between the data and the end marker',
        Buffer.concat([body, Buffer.from([1, 2, 3, 4, 5]), eoi]),
        'ok',
      ],
      [
        'fill bytes before the end marker',
        Buffer.concat([body, Buffer.from([0xff, 0xff]), eoi]),
        'ok',
      ],
      ['bytes after the end marker', Buffer.concat([whole, Buffer.from('trailing bytes')]), 'ok'],
    ];
    for (const [name, bytes, expected] of files) {
      const bySharp = await sharp(bytes)
        .raw()
        .toBuffer()
        .then(
          () => 'ok',
          () => 'corrupt',
        );
      expect(bySharp, `sharp on ${name}`).toBe(expected);
      for (const [left, top] of [
        [0, 0],
        [56, 120],
        [0, 248],
      ] as const) {
        const got = decoder.decodeRegion(bytes, left, top, 8, 8);
        const status = typeof got === 'number' ? WASM_JPEG_STATUS[got] : 'ok';
        expect(status, `${name}, window at (${left}, ${top})`).toBe(expected);
      }
    }
  });
});

describe('DataLoader decoding threads', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'thor-ts-wasm-loader-'));
    const image = noisyImage(120, 90, 2);
    const files: [string, Buffer][] = [
      ['a/baseline.JPEG', await image.clone().jpeg({ quality: 90 }).toBuffer()],
      [
        'a/q40-444.JPEG',
        await image.clone().jpeg({ quality: 40, chromaSubsampling: '4:4:4' }).toBuffer(),
      ],
      ['a/gray.JPEG', await image.clone().grayscale().jpeg().toBuffer()],
      ['b/progressive.JPEG', await image.clone().jpeg({ progressive: true }).toBuffer()],
      ['b/cmyk.JPEG', await image.clone().toColourspace('cmyk').jpeg().toBuffer()],
      ['b/png.JPEG', await image.clone().png().toBuffer()],
      ['b/restart.JPEG', readFileSync(join(fixtures, 'restart-3-mcus.jpg'))],
      ['b/h2v1.JPEG', readFileSync(join(fixtures, 'h2v1-restart-1-row.jpg'))],
    ];
    const truncated = await image.clone().jpeg().toBuffer();
    files.push(['c/truncated.JPEG', truncated.subarray(0, truncated.length - 400)]);
    for (let k = 0; k < 6; k++) {
      files.push([
        `c/${k}.JPEG`,
        await noisyImage(100 + 13 * k, 140 - 7 * k, k)
          .jpeg()
          .toBuffer(),
      ]);
    }
    for (const [path, bytes] of files) {
      await mkdir(join(dir, path, '..'), { recursive: true });
      await writeFile(join(dir, path), bytes);
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function epoch(workers: number, transforms: Transform[], e: number) {
    const dataset = await openImageFolder(dir);
    const skipped: string[] = [];
    const loader = new DataLoader(dataset, {
      batchSize: 4,
      transforms,
      workers,
      seed: 5,
      onSkip: (s) => skipped.push(`${s.path}: ${s.reason}`),
    });
    const batches: Batch[] = [];
    for await (const batch of loader.epoch(e)) batches.push(batch);
    await loader.close();
    return { batches, skipped };
  }

  it('gives the batches sharp alone gives, for every kind of file, skipped ones included', async () => {
    for (const [e, transforms] of [
      imagenetTrainTransforms(64),
      imagenetEvalTransforms(56, 64),
    ].entries()) {
      const threads = await epoch(2, transforms, e);
      const sharpOnly = await epoch(0, transforms, e);
      expect(threads.batches.length).toBe(sharpOnly.batches.length);
      // Batches of all their files are the buffers the threads wrote; others are copies.
      expect(threads.batches[0]!.images.buffer).toBeInstanceOf(SharedArrayBuffer);
      threads.batches.forEach((batch, b) => {
        const other = sharpOnly.batches[b]!;
        expect(batch.shape).toEqual(other.shape);
        expect(batch.indices).toEqual(other.indices);
        expect(batch.labels).toEqual(other.labels);
        expect(sameBits(batch.images, other.images), `batch ${b}`).toBe(true);
      });
      // The same file left out both ways, with sharp's reason (libvips words it one way or the
      // other from run to run).
      const reason = /truncated\.JPEG: .*(premature end|truncated|warning treated as error)/i;
      expect(threads.skipped).toEqual([expect.stringMatching(reason)]);
      expect(sharpOnly.skipped).toEqual([expect.stringMatching(reason)]);
    }
  });

  it('fills a released batch buffer again rather than a new one', async () => {
    const dataset = await openImageFolder(dir);
    const loader = new DataLoader(dataset, {
      batchSize: 4,
      transforms: [resize(32), centerCrop(32)],
      onSkip: () => undefined,
      workers: 1,
      dropLast: true,
    });
    const buffers = new Set<ArrayBufferLike>();
    for await (const batch of loader.epoch(0)) {
      buffers.add(batch.images.buffer);
      batch.release();
    }
    // Batches of 4 from 15 files, the truncated one skipped: with prefetch 2, at most 4 buffers.
    expect(loader.numBatches).toBe(3);
    expect(buffers.size).toBeLessThanOrEqual(3);
    const kept: Batch[] = [];
    for await (const batch of loader.epoch(1)) kept.push(batch);
    // Not released: every batch has its own buffer.
    expect(new Set(kept.map((b) => b.images.buffer)).size).toBe(kept.length);
    await loader.close();
  });
});
