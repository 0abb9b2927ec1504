/**
 * Reads `{"data": [[v, v, ...], [...], ...]}` (the `fashion-mnist` package's class files) straight
 * from the bytes: each inner array of integers 0–255 becomes a `Uint8Array`; empty arrays are
 * left out. Much faster than `JSON.parse` into arrays of numbers. Throws naming `path` and the byte
 * offset on anything else (a value above 255, a fraction, an unexpected character).
 */
export function parsePixelArrays(bytes: Uint8Array, path: string): Uint8Array[] {
  const fail = (at: number, expected: string): Error =>
    new Error(
      `Expected ${expected} at byte ${at} of ${path} ({"data": [[0–255, ...], ...]}), found ` +
        (at < bytes.length ? `'${String.fromCharCode(bytes[at]!)}'` : 'the end of the file') +
        '.',
    );
  const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
  let at = 0;
  const skip = () => {
    while (at < bytes.length && isSpace(bytes[at]!)) at++;
  };
  const expectByte = (b: number, what: string) => {
    skip();
    if (bytes[at] !== b) throw fail(at, what);
    at++;
  };
  expectByte(0x7b, "'{'");
  skip();
  for (const b of new TextEncoder().encode('"data"')) {
    if (bytes[at] !== b) throw fail(at, '"data"');
    at++;
  }
  expectByte(0x3a, "':'");
  expectByte(0x5b, "'['");
  const images: Uint8Array[] = [];
  let row = new Uint8Array(1024);
  let length = 0;
  skip();
  if (bytes[at] === 0x5d) return images;
  for (;;) {
    expectByte(0x5b, "'[' opening an image");
    length = 0;
    skip();
    if (bytes[at] === 0x5d) {
      at++;
    } else {
      for (;;) {
        skip();
        let value = 0;
        const start = at;
        for (let digit = bytes[at]! - 0x30; digit >= 0 && digit <= 9; digit = bytes[++at]! - 0x30) {
          value = value * 10 + digit;
        }
        if (at === start || value > 255) throw fail(start, 'an integer from 0 to 255');
        if (length === row.length) {
          const grown = new Uint8Array(2 * row.length);
          grown.set(row);
          row = grown;
        }
        row[length++] = value;
        skip();
        if (bytes[at] === 0x2c) {
          at++;
        } else if (bytes[at] === 0x5d) {
          at++;
          break;
        } else {
          throw fail(at, "',' or ']' in an image");
        }
      }
      images.push(row.slice(0, length));
    }
    skip();
    if (bytes[at] === 0x2c) {
      at++;
    } else if (bytes[at] === 0x5d) {
      return images;
    } else {
      throw fail(at, "',' or ']' between images");
    }
  }
}
