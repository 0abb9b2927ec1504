import sharp from 'sharp';
import { describe, expect, it } from 'vitest';

import {
  centerCrop,
  decodeImage,
  ImageDecodeError,
  Random,
  randomHorizontalFlip,
  randomResizedCrop,
  readImageSize,
  resize,
  type RawImage,
} from '../dist/index.js';
import { randomResizedCropParams } from '../dist/transforms/random_resized_crop.js';

/** A lossless 256×256 PNG whose pixel (x, y) is (x, y, 7): its colour says where it came from. */
async function coordinatePng(): Promise<Buffer> {
  const data = Buffer.alloc(256 * 256 * 3);
  for (let y = 0; y < 256; y++) {
    for (let x = 0; x < 256; x++) data.set([x, y, 7], (y * 256 + x) * 3);
  }
  return sharp(data, { raw: { width: 256, height: 256, channels: 3 } })
    .png()
    .toBuffer();
}

const pixel = (image: RawImage, x: number, y: number) =>
  Array.from(image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3));

const solid = (channels: 3 | 4, background: { r: number; g: number; b: number; alpha?: number }) =>
  sharp({ create: { width: 40, height: 30, channels, background } });

describe('decodeImage', () => {
  it('crops exactly where the view says, mirrored when flipped', async () => {
    const png = await coordinatePng();
    // CenterCrop(100) of 256²: offset round((256 − 100)/2) = 78, so output (0, 0) is source (78, 78)
    // and output (99, 99) is source (177, 177).
    const crop = await decodeImage(png, [centerCrop(100)], new Random(0));
    expect([crop.width, crop.height, crop.channels]).toEqual([100, 100, 3]);
    expect(pixel(crop, 0, 0)).toEqual([78, 78, 7]);
    expect(pixel(crop, 99, 99)).toEqual([177, 177, 7]);
    const flipped = await decodeImage(
      png,
      [centerCrop(100), randomHorizontalFlip(1)],
      new Random(0),
    );
    expect(pixel(flipped, 0, 0)).toEqual([177, 78, 7]);
  });

  it('decodes a random resized crop at the position get_params drew', async () => {
    // Scale 1/4 and ratio 1 of 256² is a 128² crop; output size 128 means no resampling, so the
    // output's first pixel is the source's (j, i) drawn from the same random stream.
    const options = { scale: [0.25, 0.25], ratio: [1, 1] } as const;
    const image = await decodeImage(
      await coordinatePng(),
      [randomResizedCrop(128, options)],
      Random.forSample(3, 1, 4),
    );
    const { i, j } = randomResizedCropParams(
      256,
      256,
      Random.forSample(3, 1, 4),
      [0.25, 0.25],
      [1, 1],
    );
    expect(pixel(image, 0, 0)).toEqual([j, i, 7]);
    expect(pixel(image, 127, 127)).toEqual([j + 127, i + 127, 7]);
  });

  it('crops a random resized crop on whole source pixels before resizing it (no rounding)', async () => {
    // A 190² crop shrunk to 100² (1.9× per side): output pixel x covers source
    // j + 1.9 (x + 0.5) − 0.5 at its center, and the coordinate ramp's value there is that
    // coordinate (antialiasing averages a symmetric window of a linear ramp). Rounding the offset
    // to whole output pixels instead would move it by up to 0.95 source pixels.
    const scale = (190 / 256) ** 2;
    const options = { scale: [scale, scale], ratio: [1, 1] } as const;
    const random = () => Random.forSample(5, 0, 2);
    const { i, j, w, h } = randomResizedCropParams(256, 256, random(), [scale, scale], [1, 1]);
    expect([w, h]).toEqual([190, 190]);
    const image = await decodeImage(
      await coordinatePng(),
      [randomResizedCrop(100, options)],
      random(),
    );
    for (const x of [3, 20, 50, 77, 96]) {
      const [r, g] = pixel(image, x, x);
      expect(Math.abs(r! - (j + 1.9 * (x + 0.5) - 0.5))).toBeLessThanOrEqual(0.6);
      expect(Math.abs(g! - (i + 1.9 * (x + 0.5) - 0.5))).toBeLessThanOrEqual(0.6);
    }
  });

  it('reads JPEG and PNG sizes from their headers, and nothing from other bytes', async () => {
    const rgb = sharp({ create: { width: 37, height: 23, channels: 3, background: 'red' } });
    expect(readImageSize(await rgb.clone().jpeg().toBuffer())).toEqual({ width: 37, height: 23 });
    // A progressive JPEG's frame header is SOF2, after an Exif segment.
    const progressive = await rgb
      .clone()
      .withMetadata({ orientation: 6 })
      .jpeg({ progressive: true })
      .toBuffer();
    expect(readImageSize(progressive)).toEqual({ width: 37, height: 23 });
    expect(readImageSize(await rgb.clone().png().toBuffer())).toEqual({ width: 37, height: 23 });
    expect(readImageSize(await rgb.clone().webp().toBuffer())).toBeUndefined();
    expect(readImageSize(Buffer.from('not an image'))).toBeUndefined();
    // A WebP has no header this reads: the decoder reads its size, and decoding still works.
    const webp = await decodeImage(await rgb.clone().webp().toBuffer(), [], new Random(0));
    expect([webp.width, webp.height]).toEqual([37, 23]);
  });

  it('resizes with a linear kernel: halving a ramp averages neighbour pairs', async () => {
    // Output x covers source x' = 2x and 2x + 1, values 2x and 2x + 1, so it is 2x + 0.5 (±1).
    const image = await decodeImage(await coordinatePng(), [resize(128)], new Random(0));
    expect([image.width, image.height]).toEqual([128, 128]);
    for (const x of [0, 10, 64, 127])
      expect(Math.abs(pixel(image, x, 5)[0]! - (2 * x + 0.5))).toBeLessThanOrEqual(1);
  });

  it('gives 3-channel RGB for grayscale and CMYK JPEGs, a PNG named .JPEG, RGBA and 16-bit PNGs', async () => {
    const cases: [string, Buffer, number[], number][] = [
      [
        'gray JPEG',
        await solid(3, { r: 128, g: 128, b: 128 }).toColourspace('b-w').jpeg().toBuffer(),
        [128, 128, 128],
        2,
      ],
      [
        'CMYK JPEG',
        await solid(3, { r: 200, g: 40, b: 40 }).toColourspace('cmyk').jpeg().toBuffer(),
        [200, 40, 40],
        25,
      ],
      ['PNG', await solid(3, { r: 10, g: 200, b: 30 }).png().toBuffer(), [10, 200, 30], 0],
      [
        'RGBA PNG',
        await solid(4, { r: 10, g: 200, b: 30, alpha: 0.5 }).png().toBuffer(),
        [10, 200, 30],
        0,
      ],
      [
        '16-bit PNG',
        await solid(3, { r: 10, g: 200, b: 30 }).toColourspace('rgb16').png().toBuffer(),
        [10, 200, 30],
        0,
      ],
    ];
    for (const [what, bytes, rgb, tolerance] of cases) {
      const image = await decodeImage(bytes, [], new Random(0), what);
      expect([what, image.width, image.height, image.data.length]).toEqual([
        what,
        40,
        30,
        40 * 30 * 3,
      ]);
      // PNGs are exact; JPEG moves gray by a level or two; sRGB → CMYK (sharp's generic profile)
      // → sRGB desaturates this red to about (200, 21, 18).
      pixel(image, 20, 15).forEach((v, c) =>
        expect(Math.abs(v - rgb[c]!)).toBeLessThanOrEqual(tolerance),
      );
    }
  });

  it('reports a truncated JPEG and a non-image with the path and the reason', async () => {
    const jpeg = await sharp({
      create: {
        width: 300,
        height: 200,
        channels: 3,
        background: 'black',
        noise: { type: 'gaussian', mean: 128, sigma: 30 },
      },
    })
      .jpeg()
      .toBuffer();
    const truncated = jpeg.subarray(0, jpeg.length >> 1);
    const error = await decodeImage(
      truncated,
      [centerCrop(100)],
      new Random(0),
      '/data/x.JPEG',
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImageDecodeError);
    expect((error as ImageDecodeError).path).toBe('/data/x.JPEG');
    expect((error as ImageDecodeError).message).toMatch(
      /^Expected a decodable image at \/data\/x\.JPEG, found one that fails to decode: .*(premature|truncat)/i,
    );
    await expect(
      decodeImage(Buffer.from('not an image'), [], new Random(0), '/data/y.JPEG'),
    ).rejects.toThrow(
      /^Expected a decodable image at \/data\/y\.JPEG, found one that fails to decode: .*unsupported image format/,
    );
  });
});
