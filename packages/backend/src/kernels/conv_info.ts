import { backend_util, type TensorInfo } from '@tensorflow/tfjs-core';

type ConvAttrs = {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
};

/** tfjs's convolution geometry for a gradient kernel, refusing what the wasm kernels cannot do. */
export function gradientConvInfo(
  kernel: string,
  xShape: number[],
  filterShape: number[],
  attrs: ConvAttrs,
  inputs: Record<string, TensorInfo>,
): backend_util.Conv2DInfo {
  for (const [name, t] of Object.entries(inputs)) {
    if (t.dtype !== 'float32') {
      throw new Error(`${kernel} on wasm: expected '${name}' of dtype float32, found ${t.dtype}`);
    }
  }
  if (attrs.dataFormat !== 'NHWC') {
    throw new Error(
      `${kernel} on wasm: expected dataFormat 'NHWC', found '${attrs.dataFormat}' ` +
        `(the wasm backend computes channels-last only)`,
    );
  }
  return backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
}
