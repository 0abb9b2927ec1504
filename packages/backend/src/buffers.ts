import { findBackend, getBackend, tensor, type Tensor } from '@tensorflow/tfjs-core';

/** What `readInto` needs of tfjs-backend-wasm's backend: where a tensor's data lies in its heap. */
interface WasmHeapBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
}

/**
 * Copies a float32 tensor's values into `into` from `offset` on: on the wasm backend straight from
 * its heap (one copy, where `dataSync` makes a new array first), elsewhere through `dataSync`. For
 * filling a buffer that is reused from step to step, such as the one a collective reduces.
 */
export function readInto(t: Tensor, into: Float32Array, offset = 0): void {
  if (t.dtype !== 'float32') {
    throw new Error(`readInto: expected a float32 tensor, found ${t.dtype} of shape [${t.shape}]`);
  }
  if (!Number.isInteger(offset) || offset < 0 || offset + t.size > into.length) {
    throw new Error(
      `readInto: expected ${t.size} values (shape [${t.shape}]) to fit a buffer of ${into.length} from offset ${offset}, found they do not`,
    );
  }
  const wasm = findBackend('wasm') as unknown as WasmHeapBackend | null;
  const data = wasm?.dataIdMap.get(t.dataId);
  if (wasm == null || data === undefined || data.memoryOffset % 4 !== 0) {
    into.set(t.dataSync() as Float32Array, offset);
    return;
  }
  // Through a view of the heap as it is now (a view made earlier may be detached by growth).
  into.set(new Float32Array(wasm.wasm.HEAPU8.buffer, data.memoryOffset, t.size), offset);
}

/**
 * A float32 tensor of `values` that never shares their memory: the wasm backend copies them into
 * its heap, others (the cpu backend keeps the array it is given) get a copy. So `values` may be a
 * view of a buffer that is refilled while the tensor, or a variable made from it, lives on.
 */
export function tensorOwning(values: Float32Array, shape: number[]): Tensor {
  return tensor(getBackend() === 'wasm' ? values : values.slice(), shape, 'float32');
}
