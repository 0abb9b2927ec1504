import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import {
  centerCrop,
  decodeImage,
  Random,
  resize,
  type RawImage,
  type Transform,
} from '../dist/index.js';
import { cropView } from '../dist/transforms/image_view.js';
import { resampleBilinear } from '../dist/decode/resample_bilinear.js';

/**
 * fixtures/pillow/make_pillow.py writes a lossless 97×61 PNG and what Pillow (torchvision's
 * BILINEAR) makes of it: crops resized smaller and larger, and Resize(48) then CenterCrop(40)
 * run by torchvision itself. Those bytes are the expected output, to the bit.
 */
const fixtures = fileURLToPath(new URL('./fixtures/pillow/', import.meta.url));
const png = await readFile(join(fixtures, 'source.png'));
const cases = JSON.parse(await readFile(join(fixtures, 'expected.json'), 'utf8')) as (
  | { kind: 'crop-resize'; box: number[]; size: [number, number]; rgb: string }
  | { kind: 'resize-center-crop'; resize: number; crop: number; rgb: string }
)[];

const bytes = (image: RawImage) => Buffer.from(image.data).toString('base64');

describe("Pillow's bilinear resampling", () => {
  it('gives the bytes Pillow gives for crops resized smaller and larger', async () => {
    const source = await decodeImage(png, [], new Random(0));
    expect([source.width, source.height]).toEqual([97, 61]);
    for (const c of cases) {
      if (c.kind !== 'crop-resize') continue;
      const [left, top, right, bottom] = c.box as [number, number, number, number];
      const [width, height] = c.size;
      // Through the pipeline: the crop is a view on whole source pixels, resized.
      const crop: Transform = (view) =>
        cropView(view, left, top, right - left, bottom - top, width, height);
      const decoded = await decodeImage(png, [crop], new Random(0));
      expect([c.box, bytes(decoded)]).toEqual([c.box, c.rgb]);
      // And resampleBilinear on the cropped pixels directly.
      const cropped = await decodeImage(
        png,
        [(v) => cropView(v, left, top, right - left, bottom - top)],
        new Random(0),
      );
      expect(bytes(resampleBilinear(cropped, width, height))).toBe(c.rgb);
    }
  });

  it("gives torchvision's Resize then CenterCrop to the bit, computing only the window", async () => {
    const c = cases.find((k) => k.kind === 'resize-center-crop');
    if (c?.kind !== 'resize-center-crop') throw new Error('no resize-center-crop case');
    const image = await decodeImage(png, [resize(c.resize), centerCrop(c.crop)], new Random(0));
    expect([image.width, image.height]).toEqual([40, 40]);
    expect(bytes(image)).toBe(c.rgb);
    // Resize(48) of 97×61 is 76×48 (the longer side truncated); the center 40² starts at
    // (round(36 / 2), round(8 / 2)) = (18, 4): the same bytes as that window of the whole resize.
    const source = await decodeImage(png, [], new Random(0));
    const whole = resampleBilinear(source, 76, 48);
    const window = resampleBilinear(source, 76, 48, { left: 18, top: 4, width: 40, height: 40 });
    const rows = Array.from({ length: 40 }, (_, y) =>
      whole.data.subarray(((y + 4) * 76 + 18) * 3, ((y + 4) * 76 + 58) * 3),
    );
    expect(Buffer.from(window.data).equals(Buffer.concat(rows))).toBe(true);
    expect(() =>
      resampleBilinear(source, 76, 48, { left: 40, top: 0, width: 40, height: 40 }),
    ).toThrow('Expected a window inside the 76×48 result, found 40×40 at (40, 0).');
  });
});
