/**
 * The pixel size an encoded JPEG or PNG declares in its header, read from the bytes without
 * decoding (the JPEG's frame header, the PNG's IHDR chunk), or `undefined` for other formats and
 * for headers this cannot read (the decoder then reads them, and reports what is wrong).
 */
export function readImageSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  if (bytes.length >= 24 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[12] === 0x49) {
    // PNG: an 8-byte signature, then IHDR's length, 'IHDR', width and height (big-endian).
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return positive(view.getUint32(16), view.getUint32(20));
  }
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let at = 2;
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) return undefined;
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      at += 2; // markers without a length
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined; // image data before any frame header
    const length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
    // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return positive(
        (bytes[at + 7]! << 8) | bytes[at + 8]!,
        (bytes[at + 5]! << 8) | bytes[at + 6]!,
      );
    }
    at += 2 + length;
  }
  return undefined;
}

function positive(width: number, height: number) {
  return width > 0 && height > 0 ? { width, height } : undefined;
}
