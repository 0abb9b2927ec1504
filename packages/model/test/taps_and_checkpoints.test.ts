import { mkdtemp, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  CurvatureTaps,
  loadCheckpoint,
  resnetLight,
  Rng,
  saveCheckpoint,
  saveWeights,
  type ResNet,
} from '../dist/index.js';

let dir: string;
beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  dir = await mkdtemp(join(tmpdir(), 'thor-ts-ckpt-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const small = (seed: number) => resnetLight({ layers: [1, 1], widths: [8, 16], classes: 5, seed });

function batch(rng: Rng): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const x = tf.tensor4d(rng.fillNormal(new Float32Array(4 * 12 * 12 * 3), 1), [4, 12, 12, 3]);
  const labels = Array.from({ length: 4 }, () => rng.nextU32() % 5);
  return { x, y: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 5) as tf.Tensor2D) };
}

const lossOf = (m: ResNet, x: tf.Tensor4D, y: tf.Tensor2D, taps?: CurvatureTaps) => () =>
  tf.losses.softmaxCrossEntropy(y, m.forward(x, { training: true, taps })) as tf.Scalar;

describe('curvature taps', () => {
  it('capture each layer’s input and output gradient: their products give the weight gradients', () => {
    const m = small(1);
    const { x, y } = batch(new Rng(5));
    const taps = new CurvatureTaps();
    const { value, grads } = tf.variableGrads(lossOf(m, x, y, taps));
    const grad = (name: string) => grads[m.state.get(name)?.variable?.name as string] as tf.Tensor;
    // Linear: dL/dW = inputᵀ · dL/dy.
    const fc = taps.get('fc');
    expect(fc?.geometry).toEqual({ kind: 'linear' });
    const fcW = tf.matMul(fc!.input as tf.Tensor2D, fc!.outputGrad as tf.Tensor2D, true, false);
    expect(tf.max(tf.abs(tf.sub(fcW, grad('fc.weight')))).dataSync()[0]).toBeLessThan(1e-6);
    // Convolution: dL/dW = Conv2DBackpropFilter(input, dL/dy) with the layer's geometry.
    for (const name of ['conv1', 'layer1.0.conv2', 'layer2.0.conv1', 'layer2.0.downsample.0']) {
      const t = taps.get(name)!;
      const p = t.geometry.padding!;
      const dW = tf.engine().runKernel('Conv2DBackpropFilter', { x: t.input, dy: t.outputGrad! }, {
        strides: t.geometry.stride,
        pad: [
          [0, 0],
          [p[0], p[1]],
          [p[2], p[3]],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        filterShape: grad(`${name}.weight`).shape,
      } as never) as tf.Tensor;
      expect(tf.max(tf.abs(tf.sub(dW, grad(`${name}.weight`)))).dataSync()[0], name).toBeLessThan(
        1e-5,
      );
    }
    // Two convolutions per block, the stem, one projection, the classifier.
    expect(taps.all().length).toBe(1 + 2 + 3 + 1);
    taps.dispose();
    tf.dispose([value, x, y, ...Object.values(grads)]);
    m.dispose();
  });

  it('tap only the layers asked for, and nothing without taps', () => {
    const m = small(1);
    const { x, y } = batch(new Rng(5));
    const taps = new CurvatureTaps(new Set(['fc']));
    const before = tf.memory().numTensors;
    const plain = tf.variableGrads(lossOf(m, x, y));
    tf.dispose([plain.value, ...Object.values(plain.grads)]);
    const withoutTaps = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(lossOf(m, x, y, taps));
    expect(taps.all().map((t) => t.layer)).toEqual(['fc']);
    tf.dispose([value, ...Object.values(grads)]);
    taps.dispose();
    expect(tf.memory().numTensors).toBe(withoutTaps);
    expect(withoutTaps).toBe(before);
    tf.dispose([x, y]);
    m.dispose();
  });
});

describe('checkpoints', () => {
  /** Momentum SGD slots keyed by torchvision name, so they move between model instances. */
  async function slots(opt: tf.MomentumOptimizer, m: ResNet): Promise<Record<string, tf.Tensor>> {
    const byVar = new Map(m.state.entries.map((e) => [e.variable?.name, e.name]));
    const out: Record<string, tf.Tensor> = {};
    for (const w of await opt.getWeights()) {
      const [v, slot] = w.name.split('/');
      out[slot === undefined ? w.name : `${byVar.get(v)}/${slot}`] = w.tensor;
    }
    return out;
  }

  async function restore(opt: tf.MomentumOptimizer, m: ResNet, saved: Record<string, tf.Tensor>) {
    await opt.setWeights(
      Object.entries(saved).map(([k, tensor]) => {
        const [name, slot] = k.split('/');
        return {
          name: slot === undefined ? k : `${m.state.get(name!)?.variable?.name}/${slot}`,
          tensor,
        };
      }),
    );
  }

  const step = (m: ResNet, opt: tf.Optimizer, rng: Rng) => {
    const { x, y } = batch(rng);
    opt.minimize(lossOf(m, x, y));
    tf.dispose([x, y]);
  };

  it('resume exactly: the step after loading equals the step after saving', async () => {
    const rng = new Rng(11);
    const a = small(1);
    const optA = tf.train.momentum(0.05, 0.9);
    step(a, optA, rng);
    step(a, optA, rng);
    const path = join(dir, 'run.ckpt');
    await saveCheckpoint(path, a, {
      step: 2,
      epoch: 0,
      rng: rng.state(),
      optimizerSlots: await slots(optA, a),
      optimizer: { lr: 0.05, momentum: 0.9 },
    });
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    step(a, optA, rng);
    const expected = a.state.entries.map((e) => e.variable?.dataSync().slice() ?? e.counter?.value);

    const b = small(99); // different initial weights, all overwritten by the checkpoint
    const optB = tf.train.momentum(0.05, 0.9);
    step(b, optB, new Rng(3)); // creates optB's slots, which the checkpoint then overwrites
    const loaded = await loadCheckpoint(path, b);
    expect(loaded).toMatchObject({ step: 2, epoch: 0, optimizer: { lr: 0.05, momentum: 0.9 } });
    await restore(optB, b, loaded.optimizerSlots);
    step(b, optB, new Rng(loaded.rng));
    const got = b.state.entries.map((e) => e.variable?.dataSync().slice() ?? e.counter?.value);
    expect(got).toEqual(expected);
    a.dispose();
    b.dispose();
  });

  it('reject another file or a truncated checkpoint, naming the file', async () => {
    const m = small(1);
    const path = join(dir, 'm.ckpt');
    await saveCheckpoint(path, m, { step: 0, epoch: 0 });
    const bytes = await readFile(path);
    const cut = join(dir, 'cut.ckpt');
    await writeFile(cut, bytes.subarray(0, bytes.length - 7));
    await expect(loadCheckpoint(cut, m)).rejects.toThrow(`${cut}: not a valid safetensors file`);
    const other = join(dir, 'other.safetensors');
    await saveWeights(m, other);
    await expect(loadCheckpoint(other, m)).rejects.toThrow(
      `${other}: expected a thor-ts checkpoint`,
    );
    const wider = resnetLight({ layers: [1, 1], widths: [8, 32], classes: 5 });
    await expect(loadCheckpoint(path, wider)).rejects.toThrow(
      /mis-shaped \(\d+\): layer2\.0\.conv1\.weight expected \[32,8,3,3\] found \[16,8,3,3\]/,
    );
    wider.dispose();
    m.dispose();
  });
});
