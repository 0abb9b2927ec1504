export { assignInversions, inversionCost } from './assign.js';
export { choleskyInverse } from './cholesky.js';
export { softmaxCrossEntropy } from './cross_entropy.js';
export {
  diagonalBlocks,
  factorRows,
  gradientFactorBlocks,
  gradientRows,
  inputFactorBlocks,
  positionsPerSample,
  type CurvatureSource,
} from './factors.js';
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
  type ThorStateMeta,
} from './thor.js';
