// ResNet-50 v1.5 written out with tfjs ops, and its momentum-SGD train step, for the benchmarks
// (`bench:step`, `bench:profile`). torchvision's layout: [3, 4, 6, 3] bottlenecks, stride on the
// 3×3 conv, batch norm in training mode, 1000 classes. It measures the backend, not a model API.
import * as tf from '@tensorflow/tfjs-core';

import { batchNormTrain } from '../dist/index.js';

export interface ResNet50 {
  /** Class scores for NHWC images; the first call creates the variables. */
  logits(images: tf.Tensor4D): tf.Tensor2D;
  params: Map<string, tf.Variable>;
}

const pad = (p: number): [[0, 0], [number, number], [number, number], [0, 0]] => [
  [0, 0],
  [p, p],
  [p, p],
  [0, 0],
];

export function resnet50(): ResNet50 {
  const params = new Map<string, tf.Variable>();
  function param(name: string, shape: number[], init: 'he' | 'one' | 'zero'): tf.Variable {
    let v = params.get(name);
    if (v === undefined) {
      const fanOut = (shape[0] ?? 1) * (shape[1] ?? 1) * (shape[shape.length - 1] ?? 1);
      const t = tf.tidy(() =>
        init === 'he'
          ? tf.randomNormal(shape, 0, Math.sqrt(2 / fanOut))
          : init === 'one'
            ? tf.ones(shape)
            : tf.zeros(shape),
      );
      v = tf.variable(t, true, name);
      t.dispose();
      params.set(name, v);
    }
    return v;
  }

  function convBn(x: tf.Tensor4D, name: string, k: number, cout: number, stride: number) {
    const cin = x.shape[3];
    const w = param(`${name}.weight`, [k, k, cin, cout], 'he') as tf.Tensor4D;
    const y = tf.conv2d(x, w, stride, pad((k - 1) >> 1));
    const gamma = param(`${name}.bn.weight`, [cout], 'one') as tf.Tensor1D;
    const beta = param(`${name}.bn.bias`, [cout], 'zero') as tf.Tensor1D;
    return batchNormTrain(y, gamma, beta, 1e-5).y;
  }

  function bottleneck(x: tf.Tensor4D, name: string, width: number, stride: number) {
    const out = width * 4;
    let y = tf.relu(convBn(x, `${name}.conv1`, 1, width, 1));
    y = tf.relu(convBn(y, `${name}.conv2`, 3, width, stride));
    y = convBn(y, `${name}.conv3`, 1, out, 1);
    const shortcut =
      stride !== 1 || x.shape[3] !== out ? convBn(x, `${name}.downsample`, 1, out, stride) : x;
    return tf.relu(tf.add(y, shortcut)) as tf.Tensor4D;
  }

  function logits(images: tf.Tensor4D): tf.Tensor2D {
    let x = tf.relu(convBn(images, 'conv1', 7, 64, 2));
    x = tf.maxPool(x, 3, 2, 1);
    [3, 4, 6, 3].forEach((blocks, stage) => {
      for (let b = 0; b < blocks; b++) {
        const stride = b === 0 && stage > 0 ? 2 : 1;
        x = bottleneck(x, `layer${stage + 1}.${b}`, 64 * 2 ** stage, stride);
      }
    });
    const pooled = tf.mean(x, [1, 2]) as tf.Tensor2D;
    const fc = param('fc.weight', [2048, 1000], 'he') as tf.Tensor2D;
    return tf.add(tf.matMul(pooled, fc), param('fc.bias', [1000], 'zero')) as tf.Tensor2D;
  }

  return { logits, params };
}

export type StepPhase = 'forward' | 'backward' | 'update';

/**
 * One train step, as `optimizer.minimize` runs it: the gradients (forward, then backward), then
 * the update. `onPhaseEnd` is called as each phase ends (the wasm backend computes synchronously,
 * so its work is done by then). Returns the loss.
 */
export function trainStep(
  model: ResNet50,
  optimizer: tf.Optimizer,
  images: tf.Tensor4D,
  labels: tf.Tensor2D,
  onPhaseEnd: (phase: StepPhase) => void = () => {},
): tf.Scalar {
  const { value, grads } = optimizer.computeGradients(() => {
    const loss = tf.losses.softmaxCrossEntropy(labels, model.logits(images)) as tf.Scalar;
    onPhaseEnd('forward');
    return loss;
  });
  onPhaseEnd('backward');
  optimizer.applyGradients(grads);
  tf.dispose(grads);
  onPhaseEnd('update');
  return value;
}
