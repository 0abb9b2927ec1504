import type * as tfc from '@tensorflow/tfjs-core';

import type { Batch } from './batch.js';

/** The tfjs-core module (or any object with its `tensor4d` and `tensor1d`). */
export type TensorFactory = Pick<typeof tfc, 'tensor4d' | 'tensor1d'>;

export interface ToTensorsOptions {
  /**
   * The tfjs-core module to make the tensors with: pass your own import when your program could
   * see another copy of `@tensorflow/tfjs-core` than this package does (a tensor belongs to the
   * engine of the copy that made it). Default: `@tensorflow/tfjs-core`, imported on first use.
   */
  tf?: TensorFactory;
}

/** A batch as tfjs tensors: images `[n, height, width, 3]` float32, labels `[n]` int32. */
export interface BatchTensors {
  images: tfc.Tensor4D;
  labels: tfc.Tensor1D;
}

/**
 * The batch as tfjs tensors, on the current backend (set it up first, e.g. `initBackend()` from
 * `@thor-ts/backend`). The caller owns and disposes them. `@tensorflow/tfjs-core` is an optional
 * peer dependency, imported only here, so the rest of this package works without it.
 */
export async function toTensors(
  batch: Batch,
  options: ToTensorsOptions = {},
): Promise<BatchTensors> {
  const tf = options.tf ?? (await importTfjsCore());
  const images = tf.tensor4d(batch.images, [...batch.shape], 'float32');
  try {
    return { images, labels: tf.tensor1d(batch.labels, 'int32') };
  } catch (error) {
    images.dispose();
    throw error;
  }
}

async function importTfjsCore(): Promise<TensorFactory> {
  try {
    return await import('@tensorflow/tfjs-core');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new Error(
      "Expected the npm package '@tensorflow/tfjs-core' (toTensors makes its tensors), found it " +
        'not installed: run `npm install @tensorflow/tfjs-core` next to @thor-ts/data.',
    );
  }
}
