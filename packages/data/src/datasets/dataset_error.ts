/** A dataset on disk is not what the loader expects: the message says what was expected, what was found and where. */
export class DatasetError extends Error {
  override readonly name = 'DatasetError';
  /** The file or directory the problem is about. */
  readonly path: string;

  constructor(message: string, path: string) {
    super(message);
    this.path = path;
  }
}
