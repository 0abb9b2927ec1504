export { buildModel, buildSchedules, buildTransforms } from './build.js';
export { presets, validateConfig, type TrainConfig } from './config.js';
export { flatten, unflatten } from './flat.js';
export { train, type EpochMetrics } from './trainer.js';
export { compare, readMetrics, writeReport, type Comparison, type RunResult } from './report.js';
export { lineChart, type Series } from './svg_plot.js';
