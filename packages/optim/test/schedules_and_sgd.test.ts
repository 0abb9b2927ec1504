import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import { beforeAll, describe, expect, it } from 'vitest';

import { choleskyInverse } from '../dist/cholesky.js';
import {
  cosineDecay,
  linearDecay,
  linearWarmup,
  MomentumSGD,
  polynomialDecay,
  softmaxCrossEntropy,
  stepDecay,
  thorDamping,
  thorLearningRate,
} from '../dist/index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

// Step i of epoch e (fractional) is i = e·stepsPerEpoch − 1, since MindSpore's e = (i + 1)/steps.
const at = (e: number, steps = 5004) => e * steps - 1;
/**
 * THOR.md writes the vectors with 2–3 significant digits (0.0016, 0.0179): within one unit of
 * the last digit written.
 */
const near = (value: number, reference: string) =>
  expect(Math.abs(value - Number(reference))).toBeLessThanOrEqual(
    10 ** -(reference.split('.')[1] ?? '').length,
  );

describe('schedules', () => {
  it("reproduce the reference's THOR test vectors (THOR.md)", () => {
    const lr = thorLearningRate(5004);
    near(lr(at(1)), '0.0413');
    near(lr(at(10)), '0.0179');
    near(lr(at(20)), '0.0060');
    near(lr(at(30)), '0.0016');
    // Halved from epoch 39 and again from 40: 0.045·(31/70)^6 / 2, then (30/70)^6 / 4.
    expect(lr(at(39))).toBeCloseTo((0.045 * (31 / 70) ** 6) / 2, 8);
    expect(lr(at(40))).toBeCloseTo((0.045 * (30 / 70) ** 6) / 4, 8);
    const damping = thorDamping(5004);
    near(damping(at(1)), '0.0296');
    near(damping(at(10)), '0.0261');
    near(damping(at(30)), '0.0198');
    near(damping(at(42)), '0.0167');
  });

  it('decay linearly, by cosine, by steps, and warm up', () => {
    expect([0, 50, 100, 150].map(linearDecay(0.1, 0, 100))).toEqual([0.1, 0.05, 0, 0]);
    const cos = cosineDecay(1, 100);
    expect(cos(0)).toBe(1);
    expect(cos(50)).toBeCloseTo(0.5, 12);
    expect(cos(100)).toBeCloseTo(0, 12);
    // 0.4·(1 − t/100)^2: 0.4, 0.4·0.75² = 0.225, 0.4·0.25² = 0.025, then 0 from the end on.
    expect([0, 25, 75, 100, 130].map(polynomialDecay(0.4, 100, 2))).toEqual([
      0.4, 0.225, 0.025, 0, 0,
    ]);
    expect([0, 50, 100].map(polynomialDecay(0.1, 100, 1))).toEqual(
      [0, 50, 100].map(linearDecay(0.1, 0, 100)),
    );
    expect([0, 29, 30, 60].map(stepDecay(1, [30, 60]))).toEqual([1, 1, 0.1, 0.1 * 0.1]);
    const warm = linearWarmup(0.4, 4);
    expect([0, 1, 2, 4, 9].map(warm)).toEqual([0, 0.1, 0.2, 0.4, 0.4]);
  });
});

describe('MomentumSGD', () => {
  it('follows v ← μv + g, w ← w − lr·v with weight decay on the chosen parameters (by hand)', () => {
    const w = tf.variable(tf.tensor1d([1, -2]));
    const b = tf.variable(tf.tensor1d([0.5]));
    const opt = new MomentumSGD(
      new Map([
        ['w', w],
        ['b', b],
      ]),
      {
        lr: (s) => [0.1, 0.2][s] as number,
        momentum: 0.9,
        weightDecay: 0.01,
        decays: (name) => name !== 'b',
      },
    );
    const g = tf.tensor1d([0.5, 0.5]);
    const gb = tf.tensor1d([1]);
    opt.step(
      new Map([
        ['w', g],
        ['b', gb],
      ]),
    );
    // Step 1: d = g + 0.01·w = [0.51, 0.48]; v = d; w = [1 − 0.051, −2 − 0.048]. b: v = 1, b = 0.4.
    expect(Array.from(w.dataSync())).toEqual([1 - 0.1 * 0.51, -2 - 0.1 * 0.48].map(Math.fround));
    expect(b.dataSync()[0]).toBeCloseTo(0.4, 7);
    opt.step(
      new Map([
        ['w', g],
        ['b', gb],
      ]),
    );
    // Step 2: d = [0.5 + 0.00949, 0.5 − 0.02048]; v = 0.9·v₁ + d; w −= 0.2·v. b: v = 1.9, b = 0.02.
    const w1 = [0.949, -2.048];
    const v2 = [0.9 * 0.51 + 0.5 + 0.01 * w1[0]!, 0.9 * 0.48 + 0.5 + 0.01 * w1[1]!];
    const w2 = Array.from(w.dataSync());
    expect(w2[0]).toBeCloseTo(w1[0]! - 0.2 * v2[0]!, 6);
    expect(w2[1]).toBeCloseTo(w1[1]! - 0.2 * v2[1]!, 6);
    expect(b.dataSync()[0]).toBeCloseTo(0.4 - 0.2 * 1.9, 6);
    expect(opt.stepCount).toBe(2);
    expect(Object.keys(opt.state()).sort()).toEqual(['b/momentum', 'w/momentum']);
  });

  it("differs from Sutskever's 'step' form only when the rate changes; Nesterov looks ahead", () => {
    const run = (velocity: 'gradient' | 'step', nesterov = false) => {
      const w = tf.variable(tf.scalar(0));
      const opt = new MomentumSGD(new Map([['w', w]]), {
        lr: (s) => (s === 0 ? 1 : 0.5),
        momentum: 0.5,
        velocity,
        nesterov,
      });
      for (let i = 0; i < 2; i++) opt.step(new Map([['w', tf.scalar(1)]]));
      return w.dataSync()[0];
    };
    // gradient form: v = 1, w = −1; v = 1.5, w = −1 − 0.75 = −1.75.
    expect(run('gradient')).toBeCloseTo(-1.75, 7);
    // step form: v = 1, w = −1; v = 0.5·1 + 0.5 = 1, w = −2.
    expect(run('step')).toBeCloseTo(-2, 7);
    // Nesterov (PyTorch): w −= lr·(g + μ·v): −1·(1 + 0.5) = −1.5; v = 1.5, −0.5·(1 + 0.75) → −2.375.
    expect(run('gradient', true)).toBeCloseTo(-2.375, 7);
  });

  it('restores its slots and step count', () => {
    const w = tf.variable(tf.tensor1d([1, 2]));
    const opt = new MomentumSGD(new Map([['w', w]]), { lr: 0.1, momentum: 0.9 });
    opt.restore({ 'w/momentum': tf.tensor1d([10, 20]) }, 7);
    opt.step(new Map([['w', tf.tensor1d([0, 0])]]));
    // v = 0.9·[10, 20], w = [1 − 0.9, 2 − 1.8].
    expect(Array.from(w.dataSync()).map((v) => +v.toFixed(5))).toEqual([0.1, 0.2]);
    expect(opt.stepCount).toBe(8);
    expect(() => opt.restore({ 'x/momentum': tf.scalar(1) }, 0)).toThrow(
      /slot 'x\/momentum' names no parameter/,
    );
  });
});

describe('softmaxCrossEntropy', () => {
  it('smooths labels as (1 − ε)·onehot + ε/K (by hand)', () => {
    const logits = tf.tensor2d([[0, Math.log(3)]]);
    // p = [1/4, 3/4]; target with ε = 0.2 over 2 classes: [0.1, 0.9] for label 1.
    const expected = -(0.1 * Math.log(0.25) + 0.9 * Math.log(0.75));
    expect(softmaxCrossEntropy(logits, tf.tensor1d([1], 'int32'), 0.2).dataSync()[0]).toBeCloseTo(
      expected,
      6,
    );
    expect(() => softmaxCrossEntropy(logits, tf.tensor1d([1, 0], 'int32'))).toThrow(
      /expected labels \[1\] or \[1, 2\]/,
    );
  });
});

describe('choleskyInverse', () => {
  it('inverts a symmetric positive-definite matrix and refuses an indefinite one', () => {
    // [[4, 2], [2, 3]]⁻¹ = [[3, −2], [−2, 4]] / 8.
    const inv = choleskyInverse(Float64Array.from([4, 2, 2, 3]), 2)!;
    [3 / 8, -2 / 8, -2 / 8, 4 / 8].forEach((v, i) => expect(inv[i]).toBeCloseTo(v, 14));
    expect(choleskyInverse(Float64Array.from([1, 2, 2, 1]), 2)).toBeUndefined();
  });
});
