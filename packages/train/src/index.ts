export {
  buildLoader,
  buildModel,
  buildSchedules,
  buildTransforms,
  checkClasses,
  commonImageSize,
} from './build.js';
export { presets, validateConfig, type TrainConfig } from './config.js';
export { ConfigError } from './config_error.js';
export { readMetrics } from './metrics.js';
export { EvalBatches, type EvalSource } from './eval_batches.js';
export { EventFileWriter, type EventFileOptions } from './event_file.js';
export { evaluate, evaluateWeights, type Accuracy } from './evaluate.js';
export {
  formatDuration,
  formatProgress,
  Progress,
  type ProgressMode,
  type ProgressState,
} from './progress.js';
export { train, type EpochMetrics, type TrainOptions, type TrainResult } from './trainer.js';
