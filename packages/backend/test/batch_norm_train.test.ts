import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';

import { batchNormReluTrain, batchNormTrain, initBackend } from '../dist/index.js';
import { relativeError, values } from './reference.js';

type Backend = 'wasm' | 'cpu';

/**
 * y = relu(batchNormTrain(x)) weighted by r, summed, and its gradients. On cpu batchNormTrain is
 * tfjs's moments + batchNorm differentiated by tfjs, an independent reference for the fused
 * wasm kernels.
 */
async function run(backend: Backend, shape: number[], epsilon: number, fused = false) {
  await initBackend({ backend });
  const before = tf.memory().numTensors;
  const c = shape[shape.length - 1] as number;
  const size = shape.reduce((p, d) => p * d, 1);
  // An offset and a scale per channel, so mean and variance differ between channels.
  const xv = values(size, 21).map((v, i) => v * (1 + (i % c)) + (i % c) - 3);
  const x = tf.tensor(xv, shape);
  const gamma = tf.tensor1d(values(c, 22).map((v) => v + 1.5));
  const beta = tf.tensor1d(values(c, 23));
  const r = tf.tensor(values(size, 24), shape);
  // batchNormReluTrain, or batchNormTrain and tfjs's ReLU apart.
  const bnRelu = (a: tf.Tensor, g: tf.Tensor1D, b: tf.Tensor1D) => {
    if (fused) return batchNormReluTrain(a, g, b, epsilon);
    const out = batchNormTrain(a, g, b, epsilon);
    return { ...out, y: tf.relu(out.y) };
  };
  const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(bnRelu(a, g as tf.Tensor1D, b as tf.Tensor1D).y, r));
  const [dx, dg, db] = tf.grads(f as (...args: tf.Tensor[]) => tf.Tensor)([x, gamma, beta]);
  const { y, mean, variance } = tf.tidy(() => {
    const out = bnRelu(x, gamma, beta);
    return { y: out.y, mean: out.mean, variance: out.variance };
  }) as { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor };
  const out = {
    y: y.dataSync().slice(),
    mean: mean.dataSync().slice(),
    variance: variance.dataSync().slice(),
    dx: dx!.dataSync().slice(),
    dgamma: dg!.dataSync().slice(),
    dbeta: db!.dataSync().slice(),
  };
  tf.dispose([x, gamma, beta, r, dx!, dg!, db!, y, mean, variance]);
  return { ...out, leaked: tf.memory().numTensors - before };
}

describe('batchNormTrain', () => {
  it.each([
    [[4, 5, 3, 7], 1e-5],
    [[2, 9, 9, 64], 1e-4],
    [[130, 6], 1e-5],
    // Over 2^17 floats with more than 16 channels: the statistics are summed row after row.
    [[4, 33, 33, 37], 1e-5],
  ] as const)(
    'fused on wasm equals tfjs ops on cpu, values and gradients: %j eps %d',
    async (shape, eps) => {
      const cpu = await run('cpu', [...shape], eps);
      const wasm = await run('wasm', [...shape], eps);
      for (const key of ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'] as const) {
        expect(relativeError(wasm[key], cpu[key]), key).toBeLessThan(2e-5);
      }
      // The batch statistics by hand for channel 0.
      const c = shape[shape.length - 1] as number;
      const xs = values(
        shape.reduce((p, d) => p * d, 1),
        21,
      ).map((v, i) => v * (1 + (i % c)) + (i % c) - 3);
      const ch0 = Array.from(xs.filter((_, i) => i % c === 0));
      const m = ch0.reduce((a, b) => a + b, 0) / ch0.length;
      const v = ch0.reduce((a, b) => a + (b - m) ** 2, 0) / ch0.length;
      expect(wasm.mean[0]).toBeCloseTo(m, 5);
      expect(wasm.variance[0]).toBeCloseTo(v, 4);
      expect(wasm.leaked).toBe(0);
      expect(cpu.leaked).toBe(0);
    },
  );

  it.each([
    [[4, 5, 3, 7], 1e-5],
    [[2, 9, 9, 64], 1e-4],
    [[3, 7, 5, 33], 1e-5],
    [[130, 6], 1e-5],
  ] as const)(
    'with its ReLU fused (batchNormReluTrain) equals batch norm then ReLU, values and gradients: %j eps %d',
    async (shape, eps) => {
      const cpu = await run('cpu', [...shape], eps);
      const apart = await run('wasm', [...shape], eps);
      const fused = await run('wasm', [...shape], eps, true);
      const cpuFused = await run('cpu', [...shape], eps, true);
      for (const key of ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'] as const) {
        expect(relativeError(fused[key], cpu[key]), key).toBeLessThan(2e-5);
        // The same arithmetic as the kernels apart: the same floats but for the ReLU's mask
        // reaching the gradient's sums before (not after) they are formed.
        expect(relativeError(fused[key], apart[key]), key).toBeLessThan(1e-6);
        expect(Array.from(cpuFused[key]), key).toEqual(Array.from(cpu[key]));
      }
      expect(Array.from(fused.y)).toEqual(Array.from(apart.y));
      expect(Math.min(...fused.y)).toBe(0);
      expect(fused.leaked).toBe(0);
      expect(cpuFused.leaked).toBe(0);
    },
  );

  it.each([
    [[4, 5, 3, 7], false],
    [[4, 5, 3, 7], true],
    [[4, 33, 33, 37], true],
    [[1, 1, 1, 3], false],
  ] as const)(
    "updates PyTorch's running statistics as given (%j, with its ReLU: %s), on wasm as on cpu",
    async (shape, relu) => {
      const momentum = 0.1;
      const c: number = shape[3];
      const size = shape.reduce((p: number, d: number) => p * d, 1);
      const xv = values(size, 31).map((v, i) => v * (1 + (i % c)) + (i % c) - 3);
      const runMean = values(c, 32);
      const runVar = values(c, 33).map((v) => v + 1.5);
      const results: Record<'mean' | 'variance', tf.TypedArray>[] = [];
      for (const backend of ['wasm', 'cpu'] as const) {
        await initBackend({ backend });
        const before = tf.memory().numTensors;
        const x = tf.tensor4d(xv, [...shape]);
        const [gamma, beta] = [tf.ones([c]) as tf.Tensor1D, tf.zeros([c]) as tf.Tensor1D];
        const running = { mean: tf.tensor1d(runMean), variance: tf.tensor1d(runVar), momentum };
        const out = (relu ? batchNormReluTrain : batchNormTrain)(x, gamma, beta, 1e-5, running);
        results.push({
          mean: out.running!.mean.dataSync(),
          variance: out.running!.variance.dataSync(),
        });
        // The given statistics are left as they were: the new ones are new tensors.
        expect(Array.from(running.mean.dataSync())).toEqual(Array.from(Float32Array.from(runMean)));
        tf.dispose([x, gamma, beta, running.mean, running.variance, out.y, out.mean, out.variance]);
        tf.dispose([out.running!.mean, out.running!.variance]);
        expect(tf.memory().numTensors).toBe(before);
      }
      const [wasm, cpu] = results as [(typeof results)[0], (typeof results)[0]];
      // By hand in float64: (1 − m) · running + m · batch's, the variance unbiased (n / (n − 1)).
      const n = size / c;
      for (let ch = 0; ch < c; ch++) {
        const xs = xv.filter((_, i) => i % c === ch);
        const mean = xs.reduce((a, b) => a + b, 0) / n;
        const biased = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
        const unbiased = n > 1 ? (biased * n) / (n - 1) : biased;
        const want = {
          mean: (1 - momentum) * (runMean[ch] as number) + momentum * mean,
          variance: (1 - momentum) * (runVar[ch] as number) + momentum * unbiased,
        };
        for (const key of ['mean', 'variance'] as const) {
          for (const got of [wasm, cpu]) {
            expect(Math.abs((got[key]![ch] as number) - want[key]), `${key}[${ch}]`).toBeLessThan(
              1e-5 * Math.max(1, Math.abs(want[key])),
            );
          }
        }
      }
    },
  );

  it('rejects running statistics of the wrong size and a momentum outside [0, 1]', async () => {
    await initBackend({ backend: 'wasm' });
    const [x, g, b] = [
      tf.zeros([2, 3, 4]),
      tf.ones([4]) as tf.Tensor1D,
      tf.zeros([4]) as tf.Tensor1D,
    ];
    const ok = tf.zeros([4]) as tf.Tensor1D;
    expect(() =>
      batchNormTrain(x, g, b, 1e-5, { mean: tf.zeros([3]), variance: ok, momentum: 0.1 }),
    ).toThrow(
      /expected runningMean of dtype float32 and shape \[4\] \(x's channels\), found float32 \[3\]/,
    );
    expect(() =>
      batchNormReluTrain(x, g, b, 1e-5, { mean: ok, variance: ok, momentum: 1.5 }),
    ).toThrow(/ThorBatchNormReluTrain: expected a momentum in \[0, 1\], found 1.5/);
  });

  it('rejects gamma of the wrong size naming both shapes', async () => {
    await initBackend({ backend: 'wasm' });
    const x = tf.zeros([2, 3, 4]);
    expect(() => batchNormTrain(x, tf.ones([3]), tf.zeros([3]))).toThrow(
      /expected gamma and beta of shape \[4\] \(x's channels\), found \[3\]/,
    );
  });
});

describe('wasm kernels that change no result', () => {
  it('ReLU gradient in one pass equals tfjs-core’s formula', async () => {
    await initBackend({ backend: 'wasm' });
    const x = tf.tensor1d([-2, -0, 0, 1e-30, 3, -1e-30, 5]);
    const dy = tf.tensor1d([1, 2, 3, 4, 5, 6, 7]);
    const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.relu(a), dy)))(x);
    // ReLU passes the gradient where x > 0 only (tfjs-core: dy · step(x), step(0) = 0).
    expect(Array.from(dx.dataSync())).toEqual([0, 0, 0, 4, 5, 0, 7]);
  });

  it('Identity shares data instead of copying it, and frees it with the last reference', async () => {
    await initBackend({ backend: 'wasm' });
    const dataIds = () => tf.engine().backend.numDataIds();
    const before = dataIds();
    const x = tf.tensor1d([1, 2, 3]);
    const c = tf.clone(x);
    // tfjs-backend-wasm's own Identity allocates new data (a new dataId) and copies.
    expect(c.dataId).toBe(x.dataId);
    expect(dataIds()).toBe(before + 1);
    x.dispose();
    expect(Array.from(c.dataSync())).toEqual([1, 2, 3]);
    c.dispose();
    expect(dataIds()).toBe(before);
  });
});
