// The small-data reproduction's presets (npm run reproduce -- --regime small), and where the
// ImageNet regime's tuning started: each optimizer's best settings for a ResNet-8 on 10,000
// Fashion-MNIST images. `presets['fashion-mnist-sgd']` and `presets['fashion-mnist-thor']`.

// A ResNet-8 (3×3 stem of 16, one basic block per stage at 16/32/64) on Fashion-MNIST 28×28: what
// both optimizers of the small reproduction share.
const fashionBase = {
  data: '',
  model: { arch: 'resnetLight', classes: 10, layers: [1, 1, 1], widths: [16, 32, 64] },
  augment: 'small',
  batchSize: 128,
  // Where `npm run sweep -w thor-vs-sgd` starts; each preset below holds its optimizer's best trial.
  lr: { schedule: 'cosine', base: 0.2 },
  momentum: 0.9,
  labelSmoothing: 0.1,
  thor: { dampingBase: 0.03, dampingDecay: 0.87, frequency: 10, blockSize: 128 },
  normalization: { mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353] },
  seed: 1,
  checkpointEvery: 0,
};

// Each optimizer's own settings: the best of `npm run sweep -w thor-vs-sgd` (reports/thor-vs-sgd/small/sweep.md), then
// of `npm run scale-sweep -w thor-vs-sgd` at the reproduction's scale (scale-sweep.md; THOR's stayed as it was).
export const fashionMnistSgd = {
  ...fashionBase,
  model: { ...fashionBase.model, layers: [1, 1, 1], widths: [16, 32, 64] },
  lr: { ...fashionBase.lr, base: 0.392 },
  thor: { ...fashionBase.thor },
  normalization: { mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353] },
  out: 'runs/fashion-mnist-sgd',
  optimizer: 'sgd',
  epochs: 10,
  weightDecay: 1e-3,
  nesterov: true,
  labelSmoothing: 0,
};
export const fashionMnistThor = {
  ...fashionBase,
  model: { ...fashionBase.model, layers: [1, 1, 1], widths: [16, 32, 64] },
  lr: { ...fashionBase.lr, base: 0.14 },
  thor: { ...fashionBase.thor },
  normalization: { mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353] },
  out: 'runs/fashion-mnist-thor',
  optimizer: 'thor',
  epochs: 5,
  weightDecay: 5e-4,
};

/** The two presets by name, as the scripts of this example look them up. */
export const presets = {
  'fashion-mnist-sgd': fashionMnistSgd,
  'fashion-mnist-thor': fashionMnistThor,
};
