import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import { beforeAll, describe, expect, it } from 'vitest';

import {
  archNames,
  buildArch,
  CurvatureTaps,
  declareCurvature,
  hasArch,
  init,
  ModelState,
  namedParameters,
  parameterCount,
  predict,
  registerArch,
  resnet18,
  Rng,
  unknownArch,
  type ForwardContext,
  type Model,
} from '../dist/index.js';

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

/** A one-layer model of one's own: a linear map whose weight is stored as 'head.kernel'. */
function ownModel(): Model {
  const state = new ModelState();
  const w = state.add(
    'head.kernel',
    'parameter',
    'linear',
    [6, 3],
    init.linearWeight(new Rng(1), 6, 3),
  );
  const layer = declareCurvature(state, { name: 'head', kind: 'linear', weight: 'head.kernel' });
  return {
    state,
    forward(x: tf.Tensor, ctx: ForwardContext = { training: false }) {
      const flat = tf.reshape(x, [x.shape[0] as number, 6]) as tf.Tensor2D;
      const y = tf.matMul(flat, w as unknown as tf.Tensor2D);
      return (ctx.taps?.wants('head') ? ctx.taps.record(layer, flat, y) : y) as tf.Tensor2D;
    },
    dispose: () => state.dispose(),
  };
}

describe('the model contract', () => {
  it('a model of one’s own: named parameters, declared layers, taps keyed by its weight’s name', () => {
    const before = tf.memory().numTensors;
    const m = ownModel();
    expect([...namedParameters(m).keys()]).toEqual(['head.kernel']);
    expect(parameterCount(m)).toBe(18);
    expect(m.state.curvature).toEqual([{ name: 'head', weight: 'head.kernel', kind: 'linear' }]);
    const taps = new CurvatureTaps();
    const x = tf.ones([2, 1, 2, 3]);
    const { value, grads } = tf.variableGrads(() => tf.sum(m.forward(x, { training: true, taps })));
    const tap = taps.get('head');
    expect(tap?.weight).toBe('head.kernel');
    expect(tap?.input.shape).toEqual([2, 6]);
    // d(sum y)/dy = 1 everywhere.
    expect(Array.from(tap!.outputGrad!.dataSync())).toEqual([1, 1, 1, 1, 1, 1]);
    const logits = predict(m, x);
    expect(logits.shape).toEqual([2, 3]);
    tf.dispose([x, value, logits, ...Object.values(grads)]);
    taps.dispose();
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the built-in layers declare themselves: every convolution and the classifier of a ResNet', () => {
    const m = resnet18({ classes: 10, seed: 1 });
    const layers = m.state.curvature;
    // 1 stem + 8 blocks × 2 + 3 projections = 20 convolutions, and fc.
    expect(layers).toHaveLength(21);
    expect(layers[0]).toEqual({
      name: 'conv1',
      weight: 'conv1.weight',
      kind: 'conv2d',
      kernel: [7, 7],
      stride: 2,
      padding: [3, 3, 3, 3],
    });
    expect(layers.find((l) => l.name === 'layer2.0.downsample.0')).toMatchObject({
      kernel: [1, 1],
      stride: 2,
    });
    expect(layers[20]).toEqual({ name: 'fc', weight: 'fc.weight', kind: 'linear' });
    m.dispose();
  });
});

describe('declareCurvature', () => {
  const state = () => {
    const s = new ModelState();
    s.add('conv.weight', 'parameter', 'conv', [3, 3, 2, 4], new Float32Array(72));
    s.add('bn.running_mean', 'buffer', 'plain', [4], new Float32Array(4));
    s.add('fc.weight', 'parameter', 'linear', [4, 2], new Float32Array(8));
    return s;
  };

  it('refuses a weight that is missing, a buffer, or laid out otherwise, naming the layer', () => {
    const s = state();
    expect(() => declareCurvature(s, { name: 'nope', kind: 'linear' })).toThrow(
      "declareCurvature('nope'): expected its weight 'nope.weight' among the model's parameters (add it to the state first), found no such entry",
    );
    expect(() =>
      declareCurvature(s, { name: 'bn', kind: 'linear', weight: 'bn.running_mean' }),
    ).toThrow('found a buffer');
    expect(() => declareCurvature(s, { name: 'conv', kind: 'conv2d', kernel: [5, 5] })).toThrow(
      "declareCurvature('conv'): expected an HWIO kernel [5, 5, in, out] with layout 'conv' as weight 'conv.weight', found [3,3,2,4] with layout 'conv'",
    );
    expect(() => declareCurvature(s, { name: 'fc', kind: 'conv2d', kernel: [4, 2] })).toThrow(
      "with layout 'linear'",
    );
    expect(() => declareCurvature(s, { name: 'conv', kind: 'linear' })).toThrow(
      "expected an [in, out] matrix with layout 'linear' as weight 'conv.weight', found [3,3,2,4] with layout 'conv'",
    );
    expect(() =>
      declareCurvature(s, { name: 'conv', kind: 'conv2d', kernel: [3, 3], stride: 0 }),
    ).toThrow('expected an integer stride ≥ 1 and paddings ≥ 0, found stride 0');
    expect(() => declareCurvature(s, { name: 'fc', kind: 'dense' as 'linear' })).toThrow(
      `expected kind 'conv2d' or 'linear', found "dense"`,
    );
    expect(s.curvature).toEqual([]);
  });

  it('takes each layer once', () => {
    const s = state();
    declareCurvature(s, { name: 'fc', kind: 'linear' });
    expect(() => declareCurvature(s, { name: 'fc', kind: 'linear' })).toThrow(
      "layer 'fc' declares its curvature twice",
    );
  });
});

describe('the architecture registry', () => {
  it('builds every built-in ResNet by name', () => {
    expect(archNames().slice(0, 9)).toEqual([
      'resnet18',
      'resnet34',
      'resnet50',
      'resnet101',
      'resnet152',
      'cifarResnet20',
      'cifarResnet32',
      'cifarResnet56',
      'resnetLight',
    ]);
    const light = buildArch('resnetLight', { classes: 4, seed: 1, layers: [1], widths: [8] });
    // torchvision's count for this net: stem 3·3·3·8 + 8·2 (bn), block 2·(9·8·8 + 16), fc 8·4 + 4.
    expect(parameterCount(light)).toBe(216 + 16 + 2 * (576 + 16) + 36);
    light.dispose();
  });

  it('takes an architecture of one’s own, and replaces one only when asked', () => {
    registerArch('own-linear', () => ownModel());
    expect(hasArch('own-linear')).toBe(true);
    const m = buildArch('own-linear', { classes: 3, seed: 0 });
    expect(m.state.curvature.map((l) => l.name)).toEqual(['head']);
    m.dispose();
    expect(() => registerArch('own-linear', () => ownModel())).toThrow(
      "registerArch: 'own-linear' is already registered (pass { replace: true } to replace it)",
    );
    registerArch('own-linear', () => ownModel(), { replace: true });
    expect(() => registerArch('1bad name', () => ownModel())).toThrow('found "1bad name"');
  });

  it('names the nearest architecture for an unknown one, and refuses unknown or bad fields', () => {
    expect(() => buildArch('resnet5O', { classes: 10, seed: 0 })).toThrow(
      `expected a registered architecture, found "resnet5O" (did you mean 'resnet50'?); registered: resnet18,`,
    );
    expect(unknownArch('transformer')).not.toContain('did you mean');
    expect(() => buildArch('resnet18', { classes: 10, seed: 0, depth: 3 })).toThrow(
      "expected the model's fields among classes, seed, batchNorm, zeroInitResidual, inputChannels, widths, found 'depth'",
    );
    expect(() => buildArch('resnetLight', { classes: 10, seed: 0, widht: [8] })).toThrow(
      "found 'widht' (did you mean 'widths'?)",
    );
    expect(() => buildArch('resnetLight', { classes: 10, seed: 0, layers: [1, 0] })).toThrow(
      "expected 'layers' a non-empty list of integers ≥ 1, found [1,0]",
    );
  });
});
