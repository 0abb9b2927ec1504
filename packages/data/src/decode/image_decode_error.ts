/** An image file that could not be decoded: which file, and the decoder's reason. */
export class ImageDecodeError extends Error {
  override readonly name = 'ImageDecodeError';
  readonly path: string;
  readonly reason: string;

  constructor(path: string, reason: string) {
    super(`Expected a decodable image at ${path}, found one that fails to decode: ${reason}`);
    this.path = path;
    this.reason = reason;
  }
}
