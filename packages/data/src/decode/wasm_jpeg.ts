import { readFileSync } from 'node:fs';

import type { PillowResize } from './decode_image.js';

/** What the wasm decoder answers (csrc/jpeg.c): `ok`, or why the file goes to sharp instead. */
export const WASM_JPEG_STATUS = ['ok', 'unsupported', 'corrupt', 'out of memory', 'bad request'];

interface JpegExports {
  memory: WebAssembly.Memory;
  input(length: number): number;
  decode(x: number, y: number, width: number, height: number): number;
  window_pixels(): number;
  normalization(): number;
  output(): number;
  crop_resize(...geometry: number[]): number;
}

let compiled: WebAssembly.Module | undefined;

/** The module, compiled once per thread from the package's `wasm/jpeg.wasm`. */
function jpegModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(
    readFileSync(new URL('../../wasm/jpeg.wasm', import.meta.url)),
  );
  return compiled;
}

/**
 * Baseline JPEGs decoded in WebAssembly, fused with torchvision's crop, resize and normalization
 * (csrc/jpeg.c): the window a crop needs is all that is decoded, and every byte is what
 * libjpeg-turbo and Pillow compute. Synchronous: the `DataLoader` runs it on worker threads. Each
 * call returns a status: 0 with the pixels, else the reason (see {@link WASM_JPEG_STATUS}) to
 * decode the file with sharp instead (progressive or CMYK JPEGs, damaged data, other formats).
 */
export class WasmJpeg {
  private readonly wasm: JpegExports;

  /** `table`: the normalization, as `normalizationTable` makes it. */
  constructor(table: Float32Array) {
    this.wasm = new WebAssembly.Instance(jpegModule(), {}).exports as unknown as JpegExports;
    if (table.length !== 3 * 256) {
      throw new RangeError(`Expected a 3×256 normalization table, found ${table.length} values.`);
    }
    new Float32Array(this.wasm.memory.buffer, this.wasm.normalization(), 768).set(table);
  }

  /**
   * The file `bytes` through `resize`, normalized (HWC float32, mirrored when `flip` is set):
   * a view of the module's memory, valid until the next call, or the status that stopped it.
   */
  cropResize(bytes: Uint8Array, resize: PillowResize, flip: boolean): Float32Array | number {
    const status = this.load(bytes);
    if (status) return status;
    const { source, window } = resize;
    const done = this.wasm.crop_resize(
      source.left,
      source.top,
      source.width,
      source.height,
      resize.width,
      resize.height,
      window.left,
      window.top,
      window.width,
      window.height,
      flip ? 1 : 0,
    );
    if (done) return done;
    const length = window.width * window.height * 3;
    return new Float32Array(this.wasm.memory.buffer, this.wasm.output(), length);
  }

  /**
   * The RGB pixels of the region (`left`, `top`, `width`, `height`) of the file `bytes`,
   * decoded (HWC, 8 bits): a view of the module's memory, valid until the next call, or a status.
   */
  decodeRegion(
    bytes: Uint8Array,
    left: number,
    top: number,
    width: number,
    height: number,
  ): Uint8Array | number {
    const status = this.load(bytes);
    if (status) return status;
    const done = this.wasm.decode(left, top, width, height);
    if (done) return done;
    return new Uint8Array(this.wasm.memory.buffer, this.wasm.window_pixels(), width * height * 3);
  }

  private load(bytes: Uint8Array): number {
    const at = this.wasm.input(bytes.length);
    if (!at) return 3;
    new Uint8Array(this.wasm.memory.buffer, at, bytes.length).set(bytes);
    return 0;
  }
}
