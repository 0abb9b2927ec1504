/** Decoded pixels: `height` rows of `width` RGB triples, 8 bits each (HWC order). */
export interface RawImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 3;
}

/** Mirrors `image` left to right in place and returns it. */
export function flipHorizontal(image: RawImage): RawImage {
  const { data, width, height } = image;
  for (let y = 0; y < height; y++) {
    let a = y * width * 3;
    let b = a + (width - 1) * 3;
    for (; a < b; a += 3, b -= 3) {
      for (let c = 0; c < 3; c++) {
        const t = data[a + c]!;
        data[a + c] = data[b + c]!;
        data[b + c] = t;
      }
    }
  }
  return image;
}
