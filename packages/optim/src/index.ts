export { assignInversions, inversionCost } from './assign.js';
export { softmaxCrossEntropy } from './cross_entropy.js';
export { meanFactors, refreshThor, type Collective } from './distributed.js';
export { flatten, unflatten } from './flat.js';
export { MomentumSGD, type MomentumSGDOptions } from './momentum_sgd.js';
export {
  cosineDecay,
  linearDecay,
  linearWarmup,
  polynomialDecay,
  stepDecay,
  thorDamping,
  thorLearningRate,
  valueAt,
  type Schedule,
} from './schedules.js';
export {
  Thor,
  type FactorPair,
  type RefreshPolicy,
  type ThorOptions,
  type ThorReport,
  type ThorLayers,
  type ThorStateMeta,
} from './thor.js';
