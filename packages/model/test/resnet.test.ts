import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import { beforeAll, describe, expect, it } from 'vitest';

import {
  cifarResnet20,
  cifarResnet32,
  cifarResnet56,
  resnet101,
  resnet152,
  resnet18,
  resnet34,
  resnet50,
  resnetLight,
  type ResNet,
} from '../dist/index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

const count = (make: () => ResNet) => {
  const m = make();
  const n = m.parameterCount();
  m.dispose();
  return n;
};

describe('ResNet variants', () => {
  it("have torchvision's exact parameter counts (sum of numel over model.parameters())", () => {
    expect(count(() => resnet18())).toBe(11_689_512);
    expect(count(() => resnet34())).toBe(21_797_672);
    expect(count(() => resnet50())).toBe(25_557_032);
    expect(count(() => resnet101())).toBe(44_549_160);
    expect(count(() => resnet152())).toBe(60_192_808);
    // MindSpore's ImageNet head has 1001 classes: 2048 more weights and 1 more bias.
    expect(count(() => resnet50({ classes: 1001 }))).toBe(25_557_032 + 2049);
  });

  it('include He et al.’s CIFAR ResNets with parameter-free shortcuts', () => {
    // ResNet-20 by hand: stem 432 + 32; stage 1: 3 × (2·2,304 + 64); stage 2: 4,608 + 9,216 + 128
    // then 2 × (2·9,216 + 128); stage 3: 18,432 + 36,864 + 256 then 2 × (2·36,864 + 256);
    // fc 64·10 + 10. Total 269,722 (the paper's "0.27M").
    expect(count(() => cifarResnet20())).toBe(269_722);
    expect(count(() => cifarResnet32())).toBe(464_154);
    expect(count(() => cifarResnet56())).toBe(853_018);
  });

  it("name parameters as torchvision's state_dict, with buffers and counters", () => {
    const m = resnet50();
    const names = m.state.entries.map((e) => e.name);
    expect(names.slice(0, 7)).toEqual([
      'conv1.weight',
      'bn1.weight',
      'bn1.bias',
      'bn1.running_mean',
      'bn1.running_var',
      'bn1.num_batches_tracked',
      'layer1.0.conv1.weight',
    ]);
    expect(names).toContain('layer1.0.downsample.0.weight');
    expect(names).toContain('layer4.2.bn3.running_var');
    expect(names.slice(-2)).toEqual(['fc.weight', 'fc.bias']);
    // 53 batch norms × 5 entries + 53 convolutions + fc weight and bias (torchvision: 320 keys).
    expect(names.length).toBe(320);
    m.dispose();
  });

  it('put the stride on the 3×3 convolution (v1.5) and keep NHWC shapes', () => {
    const m = resnet50();
    const conv = (name: string) => m.state.get(`${name}.weight`)?.shape;
    expect(conv('layer2.0.conv1')).toEqual([1, 1, 256, 128]);
    expect(conv('layer2.0.conv2')).toEqual([3, 3, 128, 128]);
    const logits = m.predict(tf.zeros([1, 64, 64, 3]));
    expect(logits.shape).toEqual([1, 1000]);
    tf.dispose(logits);
    m.dispose();
  });

  it('initialize as torchvision: Kaiming normal (fan_out), γ = 1 or 0 with zeroInitResidual', () => {
    const m = resnet18({ zeroInitResidual: true, seed: 3 });
    const w = m.state.get('layer4.1.conv2.weight')?.variable?.dataSync() as Float32Array;
    const std = Math.sqrt(w.reduce((a, v) => a + v * v, 0) / w.length);
    // fan_out = 3·3·512, so std = √(2 / 4608) = 0.02083; 2.4 M samples land within 1%.
    expect(std).toBeGreaterThan(0.02083 * 0.99);
    expect(std).toBeLessThan(0.02083 * 1.01);
    expect(
      Array.from(m.state.get('layer1.0.bn2.weight')?.variable?.dataSync() ?? []).every(
        (g) => g === 0,
      ),
    ).toBe(true);
    expect(
      Array.from(m.state.get('layer1.0.bn1.weight')?.variable?.dataSync() ?? []).every(
        (g) => g === 1,
      ),
    ).toBe(true);
    m.dispose();
  });

  it('rejects a wrong input shape naming the expected one', () => {
    const m = resnetLight({ layers: [1, 1], widths: [8, 16], classes: 4 });
    expect(() => m.forward(tf.zeros([2, 3, 32, 32]))).toThrow(
      /expected float32 images \[batch, height, width, 3\] \(NHWC\), found float32 \[2,3,32,32\]/,
    );
    expect(() => m.forward(tf.zeros([32, 32, 3]))).toThrow(/found float32 \[32,32,3\]/);
    m.dispose();
  });

  it('updates batch-norm running statistics as PyTorch (momentum 0.1, unbiased variance)', () => {
    const m = resnetLight({ layers: [1], widths: [4], classes: 2, seed: 1 });
    const x = tf.randomNormal([2, 5, 5, 3], 0, 1, 'float32', 9);
    // The stem's conv output, whose statistics bn1 sees.
    const conv1 = tf.conv2d(
      x as tf.Tensor4D,
      m.state.get('conv1.weight')?.variable as unknown as tf.Tensor4D,
      1,
      [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ],
    );
    const { mean, variance } = tf.moments(conv1, [0, 1, 2]);
    const n = 2 * 5 * 5;
    tf.tidy(() => m.forward(x, { training: true }));
    const rm = m.state.get('bn1.running_mean')?.variable?.dataSync() as Float32Array;
    const rv = m.state.get('bn1.running_var')?.variable?.dataSync() as Float32Array;
    const mu = mean.dataSync();
    const v = variance.dataSync();
    for (let c = 0; c < 4; c++) {
      expect(rm[c]).toBeCloseTo(0.9 * 0 + 0.1 * (mu[c] as number), 5);
      expect(rv[c]).toBeCloseTo(0.9 * 1 + 0.1 * (v[c] as number) * (n / (n - 1)), 5);
    }
    expect(m.state.get('bn1.num_batches_tracked')?.counter?.value).toBe(1);
    m.dispose();
  });
});
