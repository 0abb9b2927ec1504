import { describe, expect, it } from 'vitest';

import { parsePixelArrays } from '../dist/datasets/parse_pixel_arrays.js';

const parse = (text: string) => parsePixelArrays(new TextEncoder().encode(text), '/x/0.json');

describe('parsePixelArrays (the fashion-mnist class files)', () => {
  it('reads each image as bytes, leaving out empty entries, whatever the spacing', () => {
    const images = parse('{"data": [[0,255, 7],[],\n [ 12 , 3 ] ,[]]}');
    expect(images.map((image) => Array.from(image))).toEqual([
      [0, 255, 7],
      [12, 3],
    ]);
    expect(images[0]).toBeInstanceOf(Uint8Array);
    expect(parse('{"data":[]}')).toEqual([]);
    // Longer than the first scratch row (1024 values).
    const long = Array.from({ length: 3000 }, (_, k) => k % 256);
    expect(Array.from(parse(`{"data":[${JSON.stringify(long)}]}`)[0]!)).toEqual(long);
  });

  it('names the file, the byte and what it expected', () => {
    expect(() => parse('{"data":[[1,256]]}')).toThrow(
      `Expected an integer from 0 to 255 at byte 12 of /x/0.json ({"data": [[0–255, ...], ...]}), found '2'.`,
    );
    expect(() => parse('{"data":[[1.5]]}')).toThrow(
      /^Expected ',' or '\]' in an image at byte 11 .*found '\.'\.$/,
    );
    expect(() => parse('{"data":[[1]')).toThrow(/at byte 12 .*found the end of the file\.$/);
    expect(() => parse('{"images":[]}')).toThrow(/^Expected "data" at byte 2 .*found 'i'\.$/);
  });
});
