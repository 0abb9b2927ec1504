import type { TrainConfig } from '../dist/index.js';

/** A ResNet-8 on 28×28 images (Fashion-MNIST as `thor-ts data prepare` writes it), for the tests. */
function small(): Omit<TrainConfig, 'optimizer' | 'epochs' | 'lr' | 'weightDecay'> {
  return {
    data: '',
    out: 'runs/small',
    model: { arch: 'resnetLight', classes: 10, layers: [1, 1, 1], widths: [16, 32, 64] },
    augment: 'small',
    batchSize: 128,
    momentum: 0.9,
    labelSmoothing: 0.1,
    thor: { dampingBase: 0.03, dampingDecay: 0.87, frequency: 10, blockSize: 128 },
    normalization: { mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353] },
    seed: 1,
    checkpointEvery: 0,
  };
}

/** Its SGD run: 10 epochs, Nesterov momentum, no label smoothing. */
export const smallSgd = (): TrainConfig => ({
  ...small(),
  optimizer: 'sgd',
  epochs: 10,
  lr: { schedule: 'cosine', base: 0.392 },
  weightDecay: 1e-3,
  nesterov: true,
  labelSmoothing: 0,
});

/** Its THOR run: 5 epochs. */
export const smallThor = (): TrainConfig => ({
  ...small(),
  optimizer: 'thor',
  epochs: 5,
  lr: { schedule: 'cosine', base: 0.14 },
  weightDecay: 5e-4,
});
