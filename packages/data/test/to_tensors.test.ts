import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';

import { toTensors, type Batch } from '../dist/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Two 2×3 RGB images; value k of the buffer is k / 10 (as float32). */
const batch: Batch = {
  images: Float32Array.from({ length: 2 * 2 * 3 * 3 }, (_, k) => k / 10),
  labels: Int32Array.from([7, 999]),
  indices: Int32Array.from([4, 0]),
  shape: [2, 2, 3, 3],
  epoch: 0,
  index: 0,
  release: () => undefined,
};

describe('toTensors', () => {
  it('makes an NHWC float32 image tensor and an int32 label tensor, leaking nothing', async () => {
    const before = tf.memory().numTensors;
    const { images, labels } = await toTensors(batch);
    expect([images.shape, images.dtype]).toEqual([[2, 2, 3, 3], 'float32']);
    expect([labels.shape, labels.dtype]).toEqual([[2], 'int32']);
    expect(Array.from(images.dataSync())).toEqual(Array.from(batch.images));
    expect(Array.from(labels.dataSync())).toEqual([7, 999]);
    // NHWC: image 1, row 1, column 2, channel 0 is buffer index ((1·2 + 1)·3 + 2)·3 = 33.
    const pixel = tf.tidy(() => tf.slice(images, [1, 1, 2, 0], [1, 1, 1, 1]).dataSync()[0]);
    expect(pixel).toBeCloseTo(3.3, 6);
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([images, labels]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('uses the tfjs module it is given', async () => {
    const made: string[] = [];
    const factory = {
      tensor4d: ((values: Float32Array, shape: number[]) => {
        made.push(`4d ${shape.join('x')} ${values.length}`);
        return tf.tensor4d(values, shape as [number, number, number, number]);
      }) as typeof tf.tensor4d,
      tensor1d: ((values: Int32Array, dtype: 'int32') => {
        made.push(`1d ${dtype} ${values.length}`);
        return tf.tensor1d(values, dtype);
      }) as typeof tf.tensor1d,
    };
    const before = tf.memory().numTensors;
    const tensors = await toTensors(batch, { tf: factory });
    expect(made).toEqual(['4d 2x2x3x3 36', '1d int32 2']);
    tf.dispose([tensors.images, tensors.labels]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
