export {
  basicBlock,
  bottleneck,
  type Block,
  type BlockKind,
  type BlockOptions,
  type Shortcut,
} from './blocks.js';
export {
  saveCheckpoint,
  loadCheckpoint,
  type CheckpointState,
  type LoadedCheckpoint,
} from './checkpoint.js';
export { init } from './init.js';
export { batchNormPresets, BatchNorm2d, type BatchNormConfig } from './layers/batch_norm.js';
export type { ForwardContext } from './layers/context.js';
export { Conv2d } from './layers/conv2d.js';
export {
  declareCurvature,
  type CurvatureLayer,
  type CurvatureSpec,
  type TapGeometry,
} from './layers/curvature.js';
export { CurvatureTaps, type LayerTap } from './layers/curvature_taps.js';
export { Linear } from './layers/linear.js';
export { namedParameters, parameterCount, predict, type Model } from './model.js';
export {
  archNames,
  buildArch,
  hasArch,
  nearestName,
  registerArch,
  unknownArch,
  type ArchBuilder,
  type ArchOptions,
} from './registry.js';
export { resnet, ResNet, type ResNetOptions, type ResNetSpec, type StemOptions } from './resnet.js';
export { Rng, type RngState } from './rng.js';
export {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  writeSafetensors,
  type SafetensorsFile,
  type StoredTensor,
  type TensorToStore,
} from './safetensors.js';
export { ModelState, type Layout, type StateEntry } from './state.js';
export {
  convertLayout,
  loadStateDict,
  loadWeights,
  saveWeights,
  stateDict,
  torchShape,
  type LoadReport,
} from './state_dict.js';
export {
  cifarResnet,
  cifarResnet20,
  cifarResnet32,
  cifarResnet56,
  resnet101,
  resnet152,
  resnet18,
  resnet34,
  resnet50,
  resnetLight,
  type LightOptions,
} from './variants.js';
