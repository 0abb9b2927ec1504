import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import { CurvatureTaps, resnetLight, Rng } from '@thor-ts/model';
import { beforeAll, describe, expect, it } from 'vitest';

import { MomentumSGD, softmaxCrossEntropy, Thor } from '../dist/index.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

/**
 * The same small conv net (seed 1), the same 4 batches in the same order, momentum and step
 * count; one run preconditions with THOR (refreshed every 5 steps), the other does not.
 * Returns the mean training loss over the 4 batches at the end (eval mode).
 */
function train(useThor: boolean, steps: number, lr: number): number {
  const model = resnetLight({ layers: [1, 1], widths: [8, 16], classes: 4, seed: 1 });
  const rng = new Rng(7);
  // 4 batches of 16 images 8×8×3; labels are a fixed function of the image (its mean colour's
  // largest channel, or the brightness), so there is something to learn.
  const batches = Array.from({ length: 4 }, () => {
    const x = rng.fillNormal(new Float32Array(16 * 8 * 8 * 3), 1);
    const labels = Int32Array.from({ length: 16 }, (_, i) => {
      const m = [0, 1, 2].map((c) => {
        let s = 0;
        for (let p = 0; p < 64; p++) s += x[(i * 64 + p) * 3 + c] as number;
        return s;
      });
      return m[0]! + m[1]! + m[2]! > 0 ? m.indexOf(Math.max(...m)) : 3;
    });
    return { x: tf.tensor4d(x, [16, 8, 8, 3]), y: tf.tensor1d(labels, 'int32') };
  });
  const params = new Map([...model.parameters()].map(([k, e]) => [k, e.variable!]));
  const byVariable = new Map([...params].map(([k, v]) => [v.name, k]));
  const opt = new MomentumSGD(params, { lr, momentum: 0.9 });
  const thor = new Thor({ damping: 0.03, refresh: { every: 5 } });
  for (let s = 0; s < steps; s++) {
    const { x, y } = batches[s % 4]!;
    const taps = useThor && thor.wantsTaps(s) ? new CurvatureTaps() : undefined;
    const { value, grads } = tf.variableGrads(() =>
      softmaxCrossEntropy(model.forward(x, { training: true, taps }), y, 0.1),
    );
    const named = new Map(Object.entries(grads).map(([v, g]) => [byVariable.get(v)!, g]));
    if (taps !== undefined) {
      thor.update(taps.all(), s);
      taps.dispose();
    }
    const update = useThor ? thor.precondition(named) : named;
    opt.step(update);
    tf.dispose([value, ...named.values(), ...update.values()]);
  }
  const loss = tf.tidy(() => {
    let sum = 0;
    for (const { x, y } of batches)
      sum += softmaxCrossEntropy(model.forward(x), y, 0.1).dataSync()[0] as number;
    return sum / batches.length;
  });
  thor.dispose();
  opt.dispose();
  model.dispose();
  tf.dispose(batches.flatMap((b) => [b.x, b.y]));
  return loss;
}

describe('THOR against SGD on a small conv net', () => {
  it('reaches a lower training loss after the same number of steps than SGD at its best lr', () => {
    // SGD gets the best of four learning rates; THOR runs at one of them.
    const sgd = Math.min(...[0.02, 0.05, 0.1, 0.2].map((lr) => train(false, 30, lr)));
    const thor = train(true, 30, 0.05);
    console.log(
      `training loss after 30 steps: best SGD ${sgd.toFixed(4)}, THOR ${thor.toFixed(4)}`,
    );
    expect(thor).toBeLessThan(sgd * 0.9);
  });
});
