import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import {
  CurvatureTaps,
  declareCurvature,
  ModelState,
  resnetLight,
  type LayerTap,
} from '@thor-ts/model';
import { beforeAll, describe, expect, it } from 'vitest';

import { factorRows } from '../dist/factors.js';
import { assignInversions, inversionCost, Thor } from '../dist/index.js';
import { values } from './values.js';

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
});

// Float64 matrix helpers (row-major), the reference the tests compare against.
const mm = (a: Float64Array, b: Float64Array, n: number, k: number, m: number) => {
  const o = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < k; p++)
      for (let j = 0; j < m; j++) o[i * m + j] = o[i * m + j]! + a[i * k + p]! * b[p * m + j]!;
  return o;
};
const tr = (a: Float64Array, n: number, m: number) => {
  const o = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) o[j * n + i] = a[i * m + j]!;
  return o;
};
/** Gauss–Jordan inverse of an n×n matrix. */
function inverse(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]!) > Math.abs(m[p * n + c]!)) p = r;
    for (let j = 0; j < n; j++) {
      [m[c * n + j], m[p * n + j]] = [m[p * n + j]!, m[c * n + j]!];
      [inv[c * n + j], inv[p * n + j]] = [inv[p * n + j]!, inv[c * n + j]!];
    }
    const d = m[c * n + c]!;
    for (let j = 0; j < n; j++) {
      m[c * n + j] = m[c * n + j]! / d;
      inv[c * n + j] = inv[c * n + j]! / d;
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c]!;
      for (let j = 0; j < n; j++) {
        m[r * n + j] = m[r * n + j]! - f * m[c * n + j]!;
        inv[r * n + j] = inv[r * n + j]! - f * inv[c * n + j]!;
      }
    }
  }
  return inv;
}
/** M + d·I, keeping only the diagonal blocks of size `block` (all of M for block = n). */
function dampedBlockDiagonal(m: Float64Array, n: number, d: number, block: number): Float64Array {
  const o = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++)
      if (Math.floor(i / block) === Math.floor(j / block))
        o[i * n + j] = m[i * n + j]! + (i === j ? d : 0);
  return o;
}
const maxRelError = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  let e = 0;
  let s = 0;
  for (let i = 0; i < want.length; i++) {
    e = Math.max(e, Math.abs(got[i]! - want[i]!));
    s = Math.max(s, Math.abs(want[i]!));
  }
  return e / s;
};

/**
 * A linear layer y = x·W (x [N, din], W [din, dout]) under the mean loss ½‖y − t‖²/N: its output
 * gradient is g = (y − t)/N and ∇W = xᵀg. K-FAC by its definition, in float64:
 * A = xᵀx/N + √λ·I, G = (N·g)ᵀ(N·g)/N + √λ·I, update A⁻¹·∇W·G⁻¹ (blocks: only A's and G's diagonal
 * blocks kept, each inverted).
 */
function denseCase(n: number, din: number, dout: number, lambda: number, block: number | null) {
  const x = values(n * din, 1);
  const w = values(din * dout, 2).map((v) => v * 0.3);
  const t = values(n * dout, 3);
  const y = mm(x, w, n, din, dout);
  const g = y.map((v, i) => (v - t[i]!) / n);
  const gradW = mm(tr(x, n, din), g, din, n, dout);
  const d = Math.sqrt(lambda);
  const A = mm(tr(x, n, din), x, din, n, din).map((v) => v / n);
  const Ng = g.map((v) => v * n);
  const G = mm(tr(Ng, n, dout), Ng, dout, n, dout).map((v) => v / n);
  const Ainv = inverse(dampedBlockDiagonal(A, din, d, block ?? din), din);
  const Ginv = inverse(dampedBlockDiagonal(G, dout, d, block ?? dout), dout);
  const expected = mm(mm(Ainv, gradW, din, din, dout), Ginv, din, dout, dout);
  return { x, g, gradW, expected };
}

function thorUpdate(n: number, din: number, dout: number, lambda: number, block: number | null) {
  const c = denseCase(n, din, dout, lambda, block);
  const src: LayerTap = {
    layer: 'fc',
    weight: 'fc.weight',
    geometry: { kind: 'linear' },
    input: tf.tensor2d(Float32Array.from(c.x), [n, din]),
    outputGrad: tf.tensor2d(Float32Array.from(c.g), [n, dout]),
  };
  const thor = new Thor({ damping: lambda, blockSize: block, refresh: { every: 1 } });
  const report = thor.update([src], 0);
  const grads = new Map([
    ['fc.weight', tf.tensor2d(Float32Array.from(c.gradW), [din, dout]) as tf.Tensor],
  ]);
  const out = thor.precondition(grads).get('fc.weight')!;
  return { got: out.dataSync(), expected: c.expected, report, thor };
}

describe('THOR on a dense layer', () => {
  it('without splitting equals the closed-form K-FAC step in float64', () => {
    const { got, expected, report } = thorUpdate(24, 7, 5, 0.03, null);
    expect(report.refreshed).toEqual(['fc']);
    expect(maxRelError(got, expected)).toBeLessThan(1e-4);
  });

  it('with blocks equals the block-diagonal of each factor, inverted (last block padded)', () => {
    // din = 11 → blocks of 4, 4, 3 (+ 1 identity row); dout = 6 → 4, 2 (+ 2).
    const { got, expected } = thorUpdate(30, 11, 6, 0.05, 4);
    expect(maxRelError(got, expected)).toBeLessThan(1e-4);
    const full = denseCase(30, 11, 6, 0.05, null).expected;
    // …and is not the full inverse.
    expect(maxRelError(got, full)).toBeGreaterThan(1e-3);
  });

  it('retries a singular block with more damping and reports it', () => {
    // Two identical input columns and no damping: A is singular.
    const x = tf.tensor2d([1, 1, 2, 2, 3, 3], [3, 2]);
    const thor = new Thor({ damping: 0, refresh: { every: 1 } });
    const report = thor.update(
      [
        {
          layer: 'fc',
          weight: 'fc.weight',
          geometry: { kind: 'linear' },
          input: x,
          outputGrad: tf.ones([3, 1]),
        },
      ],
      0,
    );
    expect(report.retried).toEqual([{ layer: 'fc', factor: 'A', block: 0, damping: 1e-8 }]);
    const g = thor.precondition(
      new Map([['fc.weight', tf.tensor2d([1, 1], [2, 1]) as tf.Tensor]]),
      report,
    );
    expect(Array.from(g.get('fc.weight')!.dataSync()).every(Number.isFinite)).toBe(true);
  });

  it('saves and restores its inverses and refresh state', () => {
    const { thor, got } = thorUpdate(10, 4, 3, 0.03, null);
    const { tensors, meta } = thor.state();
    expect(Object.keys(tensors).sort()).toEqual(['fc/A_inv', 'fc/G_inv']);
    const copy = new Thor({ damping: 0.03, blockSize: null, refresh: { every: 1 } });
    copy.restore(
      Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, tf.clone(t)])),
      JSON.parse(JSON.stringify(meta)),
    );
    const c = denseCase(10, 4, 3, 0.03, null);
    const grad = tf.tensor2d(Float32Array.from(c.gradW), [4, 3]) as tf.Tensor;
    expect(
      Array.from(
        copy
          .precondition(new Map([['fc.weight', grad]]))
          .get('fc.weight')!
          .dataSync(),
      ),
    ).toEqual(Array.from(got));
  });

  it("clips the step by kfac-pytorch's KL bound: ĝ·min(1, √(c / |lr²·Σ ĝ·∇W|)), other gradients untouched", () => {
    const c = denseCase(16, 6, 4, 0.03, null);
    const src: LayerTap = {
      layer: 'fc',
      weight: 'fc.weight',
      geometry: { kind: 'linear' },
      input: tf.tensor2d(Float32Array.from(c.x), [16, 6]),
      outputGrad: tf.tensor2d(Float32Array.from(c.g), [16, 4]),
    };
    const run = (klClip: number | undefined, lr?: number) => {
      const thor = new Thor({ damping: 0.03, blockSize: null, refresh: { every: 1 }, klClip });
      thor.update([src], 0);
      const grads = new Map<string, tf.Tensor>([
        ['fc.weight', tf.tensor2d(Float32Array.from(c.gradW), [6, 4])],
        ['bn.gamma', tf.tensor1d([0.5, -2])],
      ]);
      const out = thor.precondition(grads, undefined, lr);
      return { w: out.get('fc.weight')!.dataSync(), bn: out.get('bn.gamma')!.dataSync() };
    };
    // vg = lr²·Σ ĝ·∇W from the float64 K-FAC step.
    const lr = 0.5;
    const vg = lr * lr * c.expected.reduce((a, v, i) => a + v * c.gradW[i]!, 0);
    expect(vg).toBeGreaterThan(0);
    const clip = vg / 9; // ν = 1/3
    const clipped = run(clip, lr);
    expect(
      maxRelError(
        clipped.w,
        c.expected.map((v) => v / 3),
      ),
    ).toBeLessThan(1e-4);
    expect(Array.from(clipped.bn)).toEqual([0.5, -2]);
    // A bound the step stays under leaves it as it is.
    expect(maxRelError(run(vg * 4, lr).w, c.expected)).toBeLessThan(1e-4);
    expect(() => run(clip)).toThrow(/klClip is set, so expected the step's learning rate/);
    expect(() => new Thor({ damping: 0.03, klClip: -1 })).toThrow(/klClip a finite number > 0/);
  });

  it('zeroes and reports a non-finite gradient', () => {
    const { thor } = thorUpdate(8, 3, 2, 0.03, null);
    const report = { step: 1, refreshed: [], retried: [], nonFinite: [] as string[], stopped: [] };
    const bad = tf.tensor2d([1, NaN, 0, 0, 0, 0], [3, 2]);
    const out = thor.precondition(new Map([['fc.weight', bad as tf.Tensor]]), report);
    expect(Array.from(out.get('fc.weight')!.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
    expect(report.nonFinite).toEqual(['fc']);
  });
});

describe('THOR on a convolution', () => {
  it("builds A from the im2col rows in the kernel's HWIO order (by definition, float64)", () => {
    // x [2, 5, 4, 3], 3×3 kernel, stride 2, padding 1: Ho = 3, Wo = 2, rows N·T = 12, K = 27.
    const [n, h, w, c] = [2, 5, 4, 3];
    const xv = values(n * h * w * c, 7);
    const x = tf.tensor4d(Float32Array.from(xv), [n, h, w, c]);
    const rows = factorRows({
      layer: 'c',
      weight: 'c.weight',
      geometry: { kind: 'conv2d', kernel: [3, 3], stride: 2, padding: [1, 1, 1, 1] },
      input: x,
    });
    expect(rows.shape).toEqual([12, 27]);
    const got = rows.dataSync();
    let r = 0;
    for (let b = 0; b < n; b++)
      for (let oh = 0; oh < 3; oh++)
        for (let ow = 0; ow < 2; ow++, r++)
          for (let i = 0; i < 3; i++)
            for (let j = 0; j < 3; j++)
              for (let ch = 0; ch < c; ch++) {
                const ih = oh * 2 + i - 1;
                const iw = ow * 2 + j - 1;
                const want =
                  ih < 0 || ih >= h || iw < 0 || iw >= w
                    ? 0
                    : xv[((b * h + ih) * w + iw) * c + ch]!;
                expect(got[r * 27 + (i * 3 + j) * c + ch]).toBeCloseTo(want, 6);
              }
  });

  it('scales the update by 1/T and damps by √(λ/T): a 1×1 conv equals a dense layer per position', () => {
    // A 1×1 conv over T = 4 positions is a dense layer on N·T rows, with s = 1/T and √(λ/T).
    const n = 3;
    const t = 4;
    const lambda = 0.04;
    const c = denseCase(n * t, 5, 3, lambda / t, null);
    const src: LayerTap = {
      layer: 'conv',
      weight: 'conv.weight',
      geometry: { kind: 'conv2d', kernel: [1, 1], stride: 1, padding: [0, 0, 0, 0] },
      input: tf.tensor4d(Float32Array.from(c.x), [n, 2, 2, 5]),
      // Per-sample rescaling multiplies by the batch N = 3, not N·T: undo the dense case's N·T.
      outputGrad: tf.tensor4d(Float32Array.from(c.g.map((v) => (v * n * t) / n)), [n, 2, 2, 3]),
    };
    const thor = new Thor({ damping: lambda, blockSize: null, refresh: { every: 1 } });
    thor.update([src], 0);
    const grad = tf.tensor4d(Float32Array.from(c.gradW), [1, 1, 5, 3]);
    const got = thor
      .precondition(new Map([['conv.weight', grad as tf.Tensor]]))
      .get('conv.weight')!;
    expect(got.shape).toEqual([1, 1, 5, 3]);
    expect(
      maxRelError(
        got.dataSync(),
        c.expected.map((v) => v / t),
      ),
    ).toBeLessThan(1e-4);
  });
});

describe('refresh and distribution', () => {
  it("keeps kfac-pytorch's running average of the factors, and checkpoints it", () => {
    expect(() => new Thor({ damping: 0.03, factorDecay: 1 })).toThrow(
      /factorDecay a number in \[0, 1\)/,
    );
    expect(() => new Thor({ damping: 0.03, factorEvery: 1 })).toThrow(/without factorDecay/);
    // Factors every step, inverses every 3.
    const thor = new Thor({
      damping: 0.03,
      refresh: { every: 3 },
      factorDecay: 0.9,
      factorEvery: 1,
    });
    expect([0, 1, 2, 3].map((s) => [thor.wantsTaps(s), thor.wantsInverses(s)])).toEqual([
      [true, true],
      [true, false],
      [true, false],
      [true, true],
    ]);
    const src: LayerTap = {
      layer: 'fc',
      weight: 'fc.weight',
      geometry: { kind: 'linear' },
      input: tf.tensor2d(Float32Array.from(values(12, 4)), [4, 3]),
      outputGrad: tf.tensor2d(Float32Array.from(values(8, 5)), [4, 2]),
    };
    const f1 = thor.computeFactors([src]);
    const f2 = new Map([
      [
        'fc',
        {
          a: tf.mul(f1.get('fc')!.a, 3) as tf.Tensor3D,
          g: tf.mul(f1.get('fc')!.g, 3) as tf.Tensor3D,
        },
      ],
    ]);
    // The first update is F1 as it is; the second 0.9·F1 + 0.1·(3·F1) = 1.2·F1.
    const first = thor.accumulate(f1);
    expect(Array.from(first.get('fc')!.a.dataSync())).toEqual(
      Array.from(f1.get('fc')!.a.dataSync()),
    );
    const second = thor.accumulate(f2);
    const expected = Array.from(f1.get('fc')!.g.dataSync()).map((v) => 1.2 * v);
    Array.from(second.get('fc')!.g.dataSync()).forEach((v, i) =>
      expect(v).toBeCloseTo(expected[i]!, 5),
    );
    // The average goes into the checkpoint and comes back.
    const { tensors, meta } = thor.state();
    expect(Object.keys(tensors).sort()).toEqual(['fc/A_avg', 'fc/G_avg']);
    const copy = new Thor({
      damping: 0.03,
      refresh: { every: 3 },
      factorDecay: 0.9,
      factorEvery: 1,
    });
    copy.restore(Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.clone()])), meta);
    const third = copy.accumulate(f1);
    // 0.9·1.2·F1 + 0.1·F1 = 1.18·F1.
    Array.from(third.get('fc')!.a.dataSync()).forEach((v, i) =>
      expect(v).toBeCloseTo(1.18 * f1.get('fc')!.a.dataSync()[i]!, 5),
    );
    for (const m of [f1, f2, first, second, third])
      for (const p of m.values()) tf.dispose([p.a, p.g]);
    tf.dispose([src.input, src.outputGrad]);
    thor.dispose();
    copy.dispose();
  });

  it('refreshes at a fixed frequency, or by the trace criterion, and can stop a layer', () => {
    const every = new Thor({ damping: 0.03, refresh: { every: 3 } });
    expect([0, 1, 2, 3, 6].map((s) => every.wantsTaps(s))).toEqual([
      true,
      false,
      false,
      true,
      true,
    ]);
    const thor = new Thor({ damping: 0.03, refresh: { trace: [0.01, 0.001], checkEvery: 1 } });
    const src = (scale: number): LayerTap => ({
      layer: 'fc',
      weight: 'fc.weight',
      geometry: { kind: 'linear' },
      input: tf.mul(tf.tensor2d(Float32Array.from(values(12, 4)), [4, 3]), scale),
      outputGrad: tf.tensor2d(Float32Array.from(values(8, 5)), [4, 2]),
    });
    expect(thor.update([src(1)], 0).refreshed).toEqual(['fc']); // first sight: refresh
    expect(thor.update([src(1.5)], 1).refreshed).toEqual(['fc']); // trace grew > 1%: refresh
    const same = thor.update([src(1.5)], 2); // unchanged (< 0.1%): stop for good
    expect(same.refreshed).toEqual([]);
    expect(same.stopped).toEqual(['fc']);
    expect(thor.update([src(3)], 3).refreshed).toEqual([]);
    expect(thor.status()).toEqual([{ layer: 'fc', hasInverse: true, stopped: true }]);
  });

  it('assigns inversions to workers by cost, balanced', () => {
    const costs = new Map([
      ['a', inversionCost(4608, 128)], // 36 blocks
      ['b', inversionCost(2048, 128)], // 16
      ['c', inversionCost(2048, 128)],
      ['d', inversionCost(576, 128)], // 4 full blocks + a padded one
    ]);
    expect(costs.get('d')).toBe(5 * 128 ** 3);
    const plan = assignInversions(costs, 2);
    expect(plan.get('a')).toBe(0);
    expect([plan.get('b'), plan.get('c'), plan.get('d')]).toEqual([1, 1, 1]);
    expect(() => assignInversions(costs, 0)).toThrow(
      /expected a positive number of workers, found 0/,
    );
  });
});

describe('THOR for any model', () => {
  /** A model of one's own: y = x·K + b, with its kernel stored as 'head.kernel'. */
  function headModel() {
    const state = new ModelState();
    const k = state.add(
      'head.kernel',
      'parameter',
      'linear',
      [4, 3],
      Float32Array.from(values(12, 5)),
    );
    const b = state.add('head.bias', 'parameter', 'plain', [3], new Float32Array(3));
    const layer = declareCurvature(state, { name: 'head', kind: 'linear', weight: 'head.kernel' });
    const forward = (x: tf.Tensor2D, taps?: CurvatureTaps) => {
      const y = tf.add(tf.matMul(x, k as unknown as tf.Tensor2D), b) as tf.Tensor2D;
      return taps ? (taps.record(layer, x, y) as tf.Tensor2D) : y;
    };
    return { state, forward, k, b };
  }

  it('lists the layers it preconditions and the parameters that pass through', () => {
    const m = resnetLight({ classes: 4, layers: [1, 1], widths: [8, 16], seed: 1 });
    const { preconditioned, passThrough } = new Thor({ damping: 0.03 }).register(m);
    expect(preconditioned.map((l) => l.name)).toEqual([
      'conv1',
      'layer1.0.conv1',
      'layer1.0.conv2',
      'layer2.0.conv1',
      'layer2.0.conv2',
      'layer2.0.downsample.0',
      'fc',
    ]);
    expect(passThrough).toEqual([
      'bn1.weight',
      'bn1.bias',
      'layer1.0.bn1.weight',
      'layer1.0.bn1.bias',
      'layer1.0.bn2.weight',
      'layer1.0.bn2.bias',
      'layer2.0.bn1.weight',
      'layer2.0.bn1.bias',
      'layer2.0.bn2.weight',
      'layer2.0.bn2.bias',
      'layer2.0.downsample.1.weight',
      'layer2.0.downsample.1.bias',
      'fc.bias',
    ]);
    m.dispose();
  });

  it('preconditions a declared layer’s gradient under its own weight name, as for a built-in layer', () => {
    const before = tf.memory().numTensors;
    const m = headModel();
    const thor = new Thor({ damping: 0.03, refresh: { every: 1 } });
    thor.register(m);
    const x = tf.tensor2d(Float32Array.from(values(24, 6)), [6, 4]);
    const taps = new CurvatureTaps();
    const { value, grads } = tf.variableGrads(
      () => tf.mean(tf.square(m.forward(x, taps))),
      [m.k, m.b],
    );
    thor.update(taps.all(), 0);
    const raw = new Map([
      ['head.kernel', grads[m.k.name] as tf.Tensor],
      ['head.bias', grads[m.b.name] as tf.Tensor],
    ]);
    const out = thor.precondition(raw);
    // The same tap as a built-in Linear named 'head' would give, keyed 'head.weight': same update.
    const builtIn = new Thor({ damping: 0.03, refresh: { every: 1 } });
    builtIn.update([{ ...taps.get('head')!, weight: 'head.weight' }], 0);
    const expected = builtIn.precondition(new Map([['head.weight', raw.get('head.kernel')!]]));
    expect(Array.from(out.get('head.kernel')!.dataSync())).toEqual(
      Array.from(expected.get('head.weight')!.dataSync()),
    );
    expect(
      maxRelError(out.get('head.kernel')!.dataSync(), raw.get('head.kernel')!.dataSync()),
    ).toBeGreaterThan(0.01);
    // The bias is not a declared layer's weight: it passes through as it was.
    expect(out.get('head.bias')).toBe(raw.get('head.bias'));
    tf.dispose([x, value, ...raw.values(), out.get('head.kernel')!, expected.get('head.weight')!]);
    taps.dispose();
    thor.dispose();
    builtIn.dispose();
    m.state.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('names the layer when a tap is not declared, or a tapped layer’s weight has no gradient', () => {
    const m = headModel();
    const thor = new Thor({ damping: 0.03, refresh: { every: 1 } });
    thor.register(m);
    const x = tf.tensor2d(Float32Array.from(values(24, 6)), [6, 4]);
    const g = tf.ones([6, 3]);
    const stray: LayerTap = {
      layer: 'other',
      weight: 'other.weight',
      geometry: { kind: 'linear' },
      input: x,
      outputGrad: g,
    };
    expect(() => thor.update([stray], 0)).toThrow(
      "THOR: a tap from layer 'other', which the registered model does not declare (declareCurvature)",
    );
    const renamed: LayerTap = { ...stray, layer: 'head', weight: 'head.weight' };
    expect(() => thor.update([renamed], 0)).toThrow(
      "THOR: layer 'head' was declared with weight 'head.kernel', its tap says 'head.weight'",
    );
    thor.update([{ ...stray, layer: 'head', weight: 'head.kernel' }], 0);
    const onlyBias = new Map([['head.bias', tf.ones([3])]]);
    expect(() => thor.precondition(onlyBias)).toThrow(
      "THOR: layer 'head' was tapped, but its weight 'head.kernel' has no gradient in this step",
    );
    tf.dispose([x, g, ...onlyBias.values()]);
    thor.dispose();
    m.state.dispose();
  });
});
