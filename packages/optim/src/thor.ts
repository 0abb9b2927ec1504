import {
  addN,
  all,
  clone,
  concat,
  dispose as disposeTensors,
  isFinite as finite,
  matMul,
  mul,
  reshape,
  slice,
  sum,
  tensor3d,
  tidy,
  transpose,
  zerosLike,
  type Tensor,
  type Tensor2D,
  type Tensor3D,
} from '@tensorflow/tfjs-core';

import type { CurvatureLayer, LayerTap, ModelState } from '@thor-ts/model';

import { choleskyInverse } from './cholesky.js';
import {
  factorColumns,
  gradientFactorBlocks,
  inputFactorBlocks,
  positionsPerSample,
} from './factors.js';
import { valueAt, type Schedule } from './schedules.js';

/** When a layer's factors and inverses are recomputed. */
export type RefreshPolicy =
  /** Every `every` steps, from step 0 (the reference: 834 on ImageNet). */
  | { every: number }
  /**
   * The paper's trace criterion, checked every `checkEvery` steps: with Δ the relative change of
   * tr(A + dI)·tr(G + dI) since the layer's last refresh, refresh if Δ > ω₁, keep if
   * ω₂ ≤ Δ ≤ ω₁, and stop refreshing the layer for good if Δ < ω₂ (THOR: [0.01, 0]).
   */
  | { trace: [number, number]; checkEvery: number };

export interface ThorOptions {
  damping: Schedule;
  /** Diagonal blocks kept of each factor (128, the reference); `null` keeps it whole (K-FAC). */
  blockSize?: number | null;
  refresh?: RefreshPolicy;
  /** 'mean' (the default): the loss averages over the batch, so output gradients are rescaled by N. */
  lossReduction?: 'mean' | 'sum';
  /**
   * kfac-pytorch's KL clipping (absent, the reference: none): the preconditioned gradients are
   * scaled by ν = min(1, √(klClip / |lr²·Σ ĝ·∇W|)) over the preconditioned layers, so that one
   * step's predicted change of the output distribution stays under `klClip`. `precondition` then
   * needs the step's learning rate.
   */
  klClip?: number;
  /**
   * kfac-pytorch's running average of the factors (`factor_decay`; absent, the reference: each
   * refresh uses its own step's factors only): on every factor step F ← decay·F + (1 − decay)·F_new
   * (the first step's F_new as it is), and inverses are made from the averages. Needs a fixed
   * refresh frequency, which then says how often the inverses are made.
   */
  factorDecay?: number;
  /**
   * With `factorDecay`: the steps between factor updates (kfac-pytorch's `factor_update_steps`,
   * e.g. 1 beside inverses every 10). Default: the refresh frequency.
   */
  factorEvery?: number;
}

/** Factor (or inverse) blocks of one layer: [nb, b, b] each. */
export interface FactorPair {
  a: Tensor3D;
  g: Tensor3D;
}

export interface ThorReport {
  step: number;
  refreshed: string[];
  /** Blocks that were not positive definite and took more damping. */
  retried: { layer: string; factor: 'A' | 'G'; block: number; damping: number }[];
  /** Layers whose gradient held NaN or Inf: their update was zeroed for this step. */
  nonFinite: string[];
  /** Layers the trace criterion stopped refreshing, from this step on. */
  stopped: string[];
}

/** The JSON part of a THOR state (see `Thor.state`). */
export interface ThorStateMeta {
  layers: Record<
    string,
    {
      kind: 'conv2d' | 'linear';
      /** The weight's name (absent in older states: `<layer>.weight`). */
      weight?: string;
      positions: number;
      stopped: boolean;
      lastTrace: number | null;
    }
  >;
}

/** What `Thor.register` found in a model: the layers THOR preconditions, and the rest. */
export interface ThorLayers {
  /** Declared layers (`declareCurvature`), in the model's order. */
  preconditioned: CurvatureLayer[];
  /** Parameters left to the optimizer alone (batch norm, biases, layers not declared). */
  passThrough: string[];
}

interface LayerState {
  kind: 'conv2d' | 'linear';
  weight: string;
  positions: number;
  inverse?: FactorPair;
  /** The running average of the factors, with `factorDecay`. */
  average?: FactorPair;
  /** The inverse's blocks cut to the layer's columns, made at the first precondition after it. */
  operators?: { a: BlockOperator; g: BlockOperator };
  lastTrace?: number;
  stopped: boolean;
}

/**
 * THOR's preconditioner (Chen et al., AAAI 2021, as MindSpore's resnet_thor runs it): per
 * convolution and linear layer, A = XᵀX/(N·T) over its im2col rows and G = (N·dY)ᵀ(N·dY)/(N·T),
 * each damped by √(λ/T)·I (√λ·I for a linear layer), kept as 128×128 diagonal blocks, inverted
 * by Cholesky in float64; the weight gradient becomes A⁻¹·∇W·G⁻¹/T (HWIO kernels viewed as
 * [kh·kw·Cin, Cout]). It only rewrites gradients; weight decay and momentum are the optimizer's.
 * Layers are those a model declares (`declareCurvature` in @thor-ts/model; `register` lists
 * them), named as their taps are ('layer1.0.conv1'); their gradients are keyed by the declared
 * weight's name ('layer1.0.conv1.weight'). Every other gradient passes through unchanged.
 */
export class Thor {
  private readonly layers = new Map<string, LayerState>();
  /** The model's declared layers, once `register` has run. */
  private declared?: Map<string, CurvatureLayer>;
  private readonly block: number | null;
  private readonly policy: RefreshPolicy;

  constructor(private readonly options: ThorOptions) {
    this.block = options.blockSize === undefined ? 128 : options.blockSize;
    this.policy = options.refresh ?? { every: 834 };
    if (this.block !== null && !(Number.isInteger(this.block) && this.block > 0)) {
      throw new Error(`Thor: expected blockSize a positive integer or null, found ${this.block}`);
    }
    const clip = options.klClip;
    if (clip !== undefined && !(typeof clip === 'number' && clip > 0 && Number.isFinite(clip))) {
      throw new Error(`Thor: expected klClip a finite number > 0 or absent, found ${clip}`);
    }
    const decay = options.factorDecay;
    if (decay !== undefined) {
      if (!(typeof decay === 'number' && decay >= 0 && decay < 1)) {
        throw new Error(`Thor: expected factorDecay a number in [0, 1) or absent, found ${decay}`);
      }
      if (!('every' in this.policy)) {
        throw new Error(
          'Thor: factorDecay needs a fixed refresh frequency ({ every }), found the trace criterion',
        );
      }
    }
    const every = options.factorEvery;
    if (every !== undefined && !(decay !== undefined && Number.isInteger(every) && every >= 1)) {
      throw new Error(
        `Thor: expected factorEvery an integer ≥ 1 beside factorDecay, or absent, found ${every}${decay === undefined ? ' without factorDecay' : ''}`,
      );
    }
  }

  /** Whether the factors are a running average over factor steps (`factorDecay`). */
  get averaging(): boolean {
    return this.options.factorDecay !== undefined;
  }

  /**
   * Takes the layers `model` declares (kfac-pytorch's layer registry): from now on a tap from any
   * other layer is an error, and a declared layer whose weight gets no gradient is one too.
   * Returns which layers THOR preconditions and which parameters pass through to the optimizer.
   */
  register(model: { state: ModelState }): ThorLayers {
    const preconditioned = model.state.curvature;
    const weights = new Set(preconditioned.map((l) => l.weight));
    for (const layer of preconditioned) {
      const entry = model.state.get(layer.weight);
      if (entry?.kind !== 'parameter' || entry.variable?.trainable === false) {
        throw new Error(
          `THOR: layer '${layer.name}' declares weight '${layer.weight}', expected a trainable parameter of the model, found ${entry === undefined ? 'none' : entry.kind === 'parameter' ? 'a frozen one' : `a ${entry.kind}`}`,
        );
      }
    }
    this.declared = new Map(preconditioned.map((l) => [l.name, l]));
    const passThrough = model.state.entries
      .filter((e) => e.kind === 'parameter' && !weights.has(e.name))
      .map((e) => e.name);
    return { preconditioned, passThrough };
  }

  /** Whether this step makes new inverses (with `factorDecay`, only some factor steps do). */
  wantsInverses(step: number): boolean {
    const p = this.policy;
    return 'every' in p ? step % p.every === 0 : this.wantsTaps(step);
  }

  /** Whether this step's forward/backward pass should capture curvature taps. */
  wantsTaps(step: number): boolean {
    const p = this.policy;
    if ('every' in p) {
      const factorEvery = this.options.factorEvery ?? p.every;
      return step % p.every === 0 || step % factorEvery === 0;
    }
    return (
      step % p.checkEvery === 0 &&
      (this.layers.size === 0 || [...this.layers.values()].some((l) => !l.stopped))
    );
  }

  /** Factors of every tapped layer this step (all-reduce them across ranks before inverting). */
  computeFactors(sources: LayerTap[]): Map<string, FactorPair> {
    const out = new Map<string, FactorPair>();
    for (const src of sources) {
      const state = this.layerState(src);
      if (state.stopped) continue;
      const t = state.positions;
      const batch = src.input.shape[0] as number;
      const n = batch * t;
      const scale = (this.options.lossReduction ?? 'mean') === 'mean' ? batch : 1;
      const cols = factorColumns(src);
      const a = inputFactorBlocks(src, this.block ?? cols.a, n);
      const g = gradientFactorBlocks(src, this.block ?? cols.g, n, scale);
      out.set(src.layer, { a, g });
    }
    return out;
  }

  /**
   * Which layers need new inverses now: all with factors under a fixed frequency, or those the
   * trace criterion selects (it also stops layers for good). `report` records the stops.
   */
  selectRefresh(step: number, factors: Map<string, FactorPair>, report: ThorReport): string[] {
    const p = this.policy;
    if ('every' in p) return [...factors.keys()];
    const [w1, w2] = p.trace;
    const chosen: string[] = [];
    for (const [layer, f] of factors) {
      const state = this.layers.get(layer) as LayerState;
      const d = this.dampingOf(state, step);
      const trace = (traceOf(f.a) + d * dimOf(f.a)) * (traceOf(f.g) + d * dimOf(f.g));
      if (state.lastTrace === undefined) {
        chosen.push(layer);
        state.lastTrace = trace;
        continue;
      }
      const delta =
        Math.abs(Math.abs(trace) - Math.abs(state.lastTrace)) / Math.abs(state.lastTrace);
      if (delta > w1) {
        chosen.push(layer);
        state.lastTrace = trace;
      } else if (delta < w2) {
        state.stopped = true;
        report.stopped.push(layer);
      }
    }
    return chosen;
  }

  /**
   * Folds this step's factors (averaged over the ranks) into each layer's running average
   * (`factorDecay`), and returns the averages: new tensors the caller disposes.
   */
  accumulate(factors: Map<string, FactorPair>): Map<string, FactorPair> {
    const decay = this.options.factorDecay;
    if (decay === undefined) throw new Error('Thor.accumulate: needs the factorDecay option');
    const out = new Map<string, FactorPair>();
    for (const [layer, f] of factors) {
      const state = this.layers.get(layer);
      if (state === undefined) throw new Error(`Thor.accumulate: unknown layer '${layer}'`);
      const old = state.average;
      const next =
        old === undefined
          ? { a: f.a.clone(), g: f.g.clone() }
          : tidy(() => ({
              a: addN([mul(old.a, decay), mul(f.a, 1 - decay)]) as Tensor3D,
              g: addN([mul(old.g, decay), mul(f.g, 1 - decay)]) as Tensor3D,
            }));
      if (old !== undefined) disposeTensors([old.a, old.g]);
      state.average = next;
      out.set(layer, { a: next.a.clone(), g: next.g.clone() });
    }
    return out;
  }

  /** Damped float64 Cholesky inverses of the chosen layers' factor blocks. */
  invert(
    layers: string[],
    factors: Map<string, FactorPair>,
    step: number,
    report: ThorReport,
  ): Map<string, FactorPair> {
    const out = new Map<string, FactorPair>();
    for (const layer of layers) {
      const f = factors.get(layer);
      const state = this.layers.get(layer);
      if (f === undefined || state === undefined)
        throw new Error(`Thor.invert: no factors for layer '${layer}'`);
      const d = this.dampingOf(state, step);
      out.set(layer, {
        a: invertBlocks(f.a, d, layer, 'A', report),
        g: invertBlocks(f.g, d, layer, 'G', report),
      });
    }
    return out;
  }

  /** Installs inverses (computed here or received from the rank that computed them). */
  setInverses(inverses: Map<string, FactorPair>): void {
    for (const [layer, inv] of inverses) {
      const state = this.layers.get(layer);
      if (state === undefined) throw new Error(`Thor.setInverses: unknown layer '${layer}'`);
      if (state.inverse !== undefined) {
        state.inverse.a.dispose();
        state.inverse.g.dispose();
      }
      disposeOperators(state);
      state.inverse = inv;
    }
  }

  /** One whole local refresh from this step's taps: factors, selection, inverses. */
  update(sources: LayerTap[], step: number): ThorReport {
    const report: ThorReport = { step, refreshed: [], retried: [], nonFinite: [], stopped: [] };
    const factors = this.computeFactors(sources);
    const chosen = this.selectRefresh(step, factors, report);
    this.setInverses(this.invert(chosen, factors, step, report));
    for (const f of factors.values()) {
      f.a.dispose();
      f.g.dispose();
    }
    report.refreshed = chosen;
    return report;
  }

  /**
   * Rewrites the gradients of layers with inverses: ĝ = A⁻¹·∇W·G⁻¹·s (s = 1/T for convolutions).
   * Other gradients (batch norm, layers not yet refreshed) pass through unchanged. A gradient with
   * NaN or Inf becomes zeros and is reported, so none reaches the weights. With `klClip`, `lr` is
   * the learning rate this step's update will take.
   */
  precondition(grads: Map<string, Tensor>, report?: ThorReport, lr?: number): Map<string, Tensor> {
    const clip = this.options.klClip;
    if (clip !== undefined && !(typeof lr === 'number' && lr >= 0 && Number.isFinite(lr))) {
      throw new Error(
        `Thor.precondition: klClip is set, so expected the step's learning rate (a number ≥ 0), found ${lr}`,
      );
    }
    const out = new Map(grads);
    for (const [layer, state] of this.layers) {
      if (state.inverse === undefined) continue;
      const key = state.weight;
      const g = grads.get(key);
      if (g === undefined) {
        throw new Error(
          `THOR: layer '${layer}' was tapped, but its weight '${key}' has no gradient in this step (expected a gradient keyed by the weight's name; is the weight trainable, and used in the forward pass?)`,
        );
      }
      const inv = state.inverse;
      const cout = g.shape[g.shape.length - 1] as number;
      const k = g.size / cout;
      state.operators ??= { a: blockOperator(inv.a, k), g: blockOperator(inv.g, cout) };
      const { a, g: gOp } = state.operators;
      out.set(
        key,
        tidy(() => {
          if (!(all(finite(g)).dataSync()[0] as number)) {
            report?.nonFinite.push(layer);
            return zerosLike(g);
          }
          const m = reshape(g, [k, cout]) as Tensor2D;
          const left = blockLeft(a, m);
          // left·G⁻¹ᵀ (G⁻¹ is symmetric): one product for a single block, else through Gᵀ.
          const both =
            gOp.full === undefined && gOp.tail !== undefined
              ? matMul(left, gOp.tail, false, true)
              : (transpose(blockLeft(gOp, transpose(left) as Tensor2D)) as Tensor2D);
          const s = state.kind === 'conv2d' ? 1 / state.positions : 1;
          return reshape(mul(both, s), g.shape);
        }),
      );
    }
    return clip === undefined ? out : this.klClipped(grads, out, clip, lr as number);
  }

  /** kfac-pytorch's KL clipping of the preconditioned gradients in `pre` (new tensors replace them). */
  private klClipped(
    grads: Map<string, Tensor>,
    pre: Map<string, Tensor>,
    clip: number,
    lr: number,
  ): Map<string, Tensor> {
    const keys = [...pre.keys()].filter((k) => pre.get(k) !== grads.get(k));
    if (keys.length === 0) return pre;
    const terms = keys.map((k) =>
      tidy(() => sum(mul(pre.get(k) as Tensor, grads.get(k) as Tensor))),
    );
    const vg = tidy(() => addN(terms)).dataSync()[0] as number;
    disposeTensors(terms);
    const nu = Math.min(1, Math.sqrt(clip / Math.abs(lr * lr * vg)));
    if (!(nu < 1)) return pre;
    for (const k of keys) {
      const t = pre.get(k) as Tensor;
      pre.set(k, mul(t, nu));
      t.dispose();
    }
    return pre;
  }

  /** Layers with inverses, and those the trace criterion stopped. */
  status(): { layer: string; hasInverse: boolean; stopped: boolean }[] {
    return [...this.layers].map(([layer, s]) => ({
      layer,
      hasInverse: s.inverse !== undefined,
      stopped: s.stopped,
    }));
  }

  /**
   * Inverses (and running averages) as named tensors (`<layer>/A_inv`, `<layer>/G_inv`,
   * `<layer>/A_avg`, `<layer>/G_avg`) and the rest as JSON.
   */
  state(): { tensors: Record<string, Tensor>; meta: ThorStateMeta } {
    const tensors: Record<string, Tensor> = {};
    const layers: ThorStateMeta['layers'] = {};
    for (const [layer, st] of this.layers) {
      if (st.inverse !== undefined) {
        tensors[`${layer}/A_inv`] = st.inverse.a;
        tensors[`${layer}/G_inv`] = st.inverse.g;
      }
      if (st.average !== undefined) {
        tensors[`${layer}/A_avg`] = st.average.a;
        tensors[`${layer}/G_avg`] = st.average.g;
      }
      layers[layer] = {
        kind: st.kind,
        weight: st.weight,
        positions: st.positions,
        stopped: st.stopped,
        lastTrace: st.lastTrace ?? null,
      };
    }
    return { tensors, meta: { layers } };
  }

  /** Restores `state()`; the tensors become this object's (it disposes them). */
  restore(tensors: Record<string, Tensor>, meta: ThorStateMeta): void {
    this.dispose();
    for (const [layer, m] of Object.entries(meta.layers)) {
      const a = tensors[`${layer}/A_inv`];
      const g = tensors[`${layer}/G_inv`];
      if ((a === undefined) !== (g === undefined)) {
        throw new Error(`Thor.restore: layer '${layer}' has only one of A_inv and G_inv`);
      }
      const avgA = tensors[`${layer}/A_avg`];
      const avgG = tensors[`${layer}/G_avg`];
      this.layers.set(layer, {
        kind: m.kind,
        weight: m.weight ?? `${layer}.weight`,
        positions: m.positions,
        stopped: m.stopped,
        lastTrace: m.lastTrace ?? undefined,
        inverse: a === undefined ? undefined : { a: a as Tensor3D, g: g as Tensor3D },
        ...(avgA === undefined || avgG === undefined
          ? {}
          : { average: { a: avgA as Tensor3D, g: avgG as Tensor3D } }),
      });
    }
  }

  dispose(): void {
    for (const s of this.layers.values()) {
      s.inverse?.a.dispose();
      s.inverse?.g.dispose();
      s.average?.a.dispose();
      s.average?.g.dispose();
      disposeOperators(s);
    }
    this.layers.clear();
  }

  private layerState(src: LayerTap): LayerState {
    let s = this.layers.get(src.layer);
    if (s === undefined) {
      const declared = this.declared?.get(src.layer);
      if (this.declared !== undefined && declared?.weight !== src.weight) {
        throw new Error(
          declared === undefined
            ? `THOR: a tap from layer '${src.layer}', which the registered model does not declare (declareCurvature)`
            : `THOR: layer '${src.layer}' was declared with weight '${declared.weight}', its tap says '${src.weight}'`,
        );
      }
      s = {
        kind: src.geometry.kind,
        weight: src.weight,
        positions: positionsPerSample(src),
        stopped: false,
      };
      this.layers.set(src.layer, s);
    }
    return s;
  }

  /** √(λ/T) for a convolution, √λ for a linear layer. */
  private dampingOf(state: LayerState, step: number): number {
    return Math.sqrt(valueAt(this.options.damping, step) / state.positions);
  }
}

const dimOf = (blocks: Tensor3D) => blocks.shape[0] * blocks.shape[1];

function traceOf(blocks: Tensor3D): number {
  const [nb, b] = blocks.shape;
  const v = blocks.dataSync();
  let t = 0;
  for (let k = 0; k < nb; k++) for (let i = 0; i < b; i++) t += v[(k * b + i) * b + i] as number;
  return t;
}

/**
 * Inverts each block + d·I in float64 (zero padding rows get 1 on the diagonal: identity
 * padding). A block that is not positive definite is retried with 10× the damping, up to 4 times.
 */
function invertBlocks(
  blocks: Tensor3D,
  damping: number,
  layer: string,
  factor: 'A' | 'G',
  report: ThorReport,
): Tensor3D {
  const [nb, b] = blocks.shape;
  const v = blocks.dataSync();
  const out = new Float32Array(nb * b * b);
  for (let k = 0; k < nb; k++) {
    let d = damping;
    for (let attempt = 0; ; attempt++) {
      const m = Float64Array.from(v.subarray(k * b * b, (k + 1) * b * b));
      for (let i = 0; i < b; i++) {
        const at = i * b + i;
        m[at] = (m[at] as number) + (m[at] === 0 && rowIsZero(m, i, b) ? 1 : d);
      }
      const inv = choleskyInverse(m, b);
      if (inv !== undefined) {
        out.set(inv, k * b * b);
        break;
      }
      if (attempt === 4) {
        throw new Error(
          `THOR: layer '${layer}' factor ${factor} block ${k} is not positive definite even with damping ${d}`,
        );
      }
      d = d > 0 ? d * 10 : 1e-8;
      report.retried.push({ layer, factor, block: k, damping: d });
    }
  }
  return tensor3d(out, [nb, b, b]);
}

function rowIsZero(m: Float64Array, i: number, b: number): boolean {
  for (let j = 0; j < b; j++) if (m[i * b + j] !== 0) return false;
  return true;
}

/**
 * A layer's inverse blocks cut to its `k` columns: the whole blocks, and the last one's top-left
 * `k mod b` square (the rest of a padded block is identity and zeros, so the products are the
 * same without the padding's work).
 */
interface BlockOperator {
  b: number;
  /** [⌊k/b⌋, b, b], or absent when k < b */
  full?: Tensor3D;
  /** [k mod b, k mod b], or absent when b divides k */
  tail?: Tensor2D;
}

function blockOperator(inv: Tensor3D, k: number): BlockOperator {
  const [nb, b] = inv.shape;
  if (nb !== Math.ceil(k / b)) {
    throw new Error(
      `THOR: expected ${Math.ceil(k / b)} inverse blocks of ${b} for ${k} columns, found ${nb}`,
    );
  }
  const whole = Math.floor(k / b);
  const rest = k - whole * b;
  return {
    b,
    ...(whole > 0
      ? { full: whole === nb ? clone(inv) : slice(inv, [0, 0, 0], [whole, b, b]) }
      : {}),
    ...(rest > 0
      ? {
          tail: tidy(
            () => reshape(slice(inv, [whole, 0, 0], [1, rest, rest]), [rest, rest]) as Tensor2D,
          ),
        }
      : {}),
  };
}

function disposeOperators(state: LayerState): void {
  if (state.operators === undefined) return;
  for (const op of [state.operators.a, state.operators.g])
    disposeTensors([op.full, op.tail].filter((t) => t !== undefined));
  state.operators = undefined;
}

/** blockdiag(inv) · m for m [k, c]. */
function blockLeft(op: BlockOperator, m: Tensor2D): Tensor2D {
  const { b, full, tail } = op;
  const [k, c] = m.shape;
  const whole = full === undefined ? 0 : full.shape[0] * b;
  const parts: Tensor2D[] = [];
  if (full !== undefined) {
    const head = whole === k ? m : slice(m, [0, 0], [whole, c]);
    const nb = full.shape[0];
    parts.push(
      reshape(matMul(full, reshape(head, [nb, b, c]) as Tensor3D), [whole, c]) as Tensor2D,
    );
  }
  if (tail !== undefined) {
    parts.push(matMul(tail, whole === 0 ? m : slice(m, [whole, 0], [k - whole, c])));
  }
  return parts.length === 1 ? (parts[0] as Tensor2D) : concat(parts, 0);
}
