export {
  initBackend,
  wasmBinariesDir,
  type BackendName,
  type InitBackendOptions,
  type InitBackendResult,
} from './init_backend.js';
export {
  registerTrainingKernels,
  type TrainingKernelsReport,
} from './register_training_kernels.js';
export { registerGradients } from './register_gradients.js';
export { addRelu, AddRelu } from './ops/add_relu.js';
export { readInto, tensorOwning } from './buffers.js';
export { axisPhases, type AxisPhase } from './kernels/conv_phases.js';
export {
  batchNormReluTrain,
  BatchNormReluTrain,
  batchNormTrain,
  BatchNormTrain,
  BatchNormTrainGrad,
  ReluGrad,
  type BatchNormTrainResult,
  type RunningStats,
} from './ops/batch_norm_train.js';
