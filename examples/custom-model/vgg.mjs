// A network that is not a ResNet: a small VGG (3×3 convolutions with batch norm, ReLU and 2×2 max
// pooling, then a linear classifier), with a convolution layer of its own that it declares to THOR.
// Importing this file registers it as the architecture 'vgg-small', which a config's `model.arch`
// can then name; every process that builds the model (the launcher's and each worker) imports it.
import * as tf from '@tensorflow/tfjs-core';
import {
  BatchNorm2d,
  batchNormPresets,
  declareCurvature,
  init,
  Linear,
  ModelState,
  registerArch,
  Rng,
} from '@thor-ts/model';

/**
 * A 3×3 convolution with a bias and 'same' padding. Its kernel is HWIO [3, 3, in, out] under
 * `<name>.weight`, as THOR expects; `declareCurvature` says so once, and `apply` hands THOR the
 * layer's input and output through the taps when it asks for them.
 */
class Conv3x3 {
  constructor(state, rng, name, inChannels, outChannels) {
    const shape = [3, 3, inChannels, outChannels];
    this.weight = state.add(`${name}.weight`, 'parameter', 'conv', shape, init.conv(rng, shape));
    this.bias = state.add(
      `${name}.bias`,
      'parameter',
      'plain',
      [outChannels],
      new Float32Array(outChannels),
    );
    this.layer = declareCurvature(state, {
      name,
      kind: 'conv2d',
      kernel: [3, 3],
      stride: 1,
      padding: [1, 1, 1, 1],
    });
  }

  apply(x, ctx) {
    const y = tf.add(tf.conv2d(x, this.weight, 1, 'same'), this.bias);
    return ctx.taps?.wants(this.layer.name) ? ctx.taps.record(this.layer, x, y) : y;
  }
}

/**
 * The model contract of @thor-ts/model: `state` (every parameter and buffer under torchvision's
 * VGG names: features.0.weight, features.1.running_mean, …, classifier.weight), `forward(images,
 * ctx)` from NHWC images to logits, and `dispose()`.
 */
export class SmallVgg {
  constructor({ classes, seed, widths = [32, 64, 128], batchNorm = 'torchvision' }) {
    this.state = new ModelState();
    const rng = new Rng(seed);
    this.stages = [];
    let channels = 3;
    for (const [i, width] of widths.entries()) {
      // features.{4i}: conv, {4i+1}: batch norm, {4i+2}: ReLU, {4i+3}: max pool, as torchvision.
      const conv = new Conv3x3(this.state, rng, `features.${4 * i}`, channels, width);
      const bn = new BatchNorm2d(
        this.state,
        `features.${4 * i + 1}`,
        width,
        batchNormPresets[batchNorm],
      );
      this.stages.push({ conv, bn });
      channels = width;
    }
    this.classifier = new Linear(this.state, rng, 'classifier', channels, classes);
  }

  forward(images, ctx = { training: false }) {
    let x = images;
    for (const { conv, bn } of this.stages) {
      x = tf.maxPool(tf.relu(bn.apply(conv.apply(x, ctx), ctx)), 2, 2, 'valid');
    }
    return this.classifier.apply(tf.mean(x, [1, 2]), ctx);
  }

  dispose() {
    this.state.dispose();
  }
}

registerArch('vgg-small', ({ classes, seed, widths, batchNorm, ...rest }) => {
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    throw new Error(`expected the fields classes, widths, batchNorm, found ${unknown.join(', ')}`);
  }
  if (
    widths !== undefined &&
    !(Array.isArray(widths) && widths.every((w) => Number.isInteger(w) && w > 0))
  ) {
    throw new Error(`expected 'widths' a list of integers ≥ 1, found ${JSON.stringify(widths)}`);
  }
  return new SmallVgg({ classes, seed, widths, batchNorm });
});
