import {
  add,
  clone,
  mul,
  sub,
  tidy,
  variable,
  type Tensor,
  type Variable,
} from '@tensorflow/tfjs-core';

import { valueAt, type Schedule } from './schedules.js';

export interface MomentumSGDOptions {
  lr: Schedule;
  momentum?: Schedule;
  /**
   * 'gradient' (MindSpore's ApplyMomentum and PyTorch's SGD): v ← μv + g, w ← w − lr·v.
   * 'step' (Sutskever et al.): v ← μv + lr·g, w ← w − v; differs when the lr changes.
   */
  velocity?: 'gradient' | 'step';
  nesterov?: boolean;
  /** PyTorch's dampening: v ← μv + (1 − dampening)·g. */
  dampening?: number;
  weightDecay?: Schedule;
  /** Which parameters get weight decay (all by default; e.g. exclude batch norm and biases). */
  decays?: (name: string) => boolean;
}

/**
 * Momentum SGD over named parameters. Its state (one velocity per parameter and the step count)
 * lives in named slots apart from the update rule, and saves and restores as named tensors.
 * `step(grads)` only applies gradients: computing them, all-reducing them and preconditioning
 * them happen before, elsewhere.
 */
export class MomentumSGD {
  private readonly slots = new Map<string, Variable>();
  private steps = 0;

  constructor(
    private readonly params: Map<string, Variable>,
    private readonly options: MomentumSGDOptions,
  ) {}

  /** Applies one update from gradients named like the parameters; missing names are skipped. */
  step(grads: Map<string, Tensor>): void {
    const o = this.options;
    const lr = valueAt(o.lr, this.steps);
    const mu = valueAt(o.momentum ?? 0, this.steps);
    const wd = valueAt(o.weightDecay ?? 0, this.steps);
    const damp = o.dampening ?? 0;
    for (const [name, g] of grads) {
      const w = this.params.get(name);
      if (w === undefined)
        throw new Error(`MomentumSGD: gradient for '${name}', which is not a parameter`);
      if (g.shape.length !== w.shape.length || g.shape.some((d, i) => d !== w.shape[i])) {
        throw new Error(
          `MomentumSGD: gradient '${name}' has shape [${g.shape}], parameter [${w.shape}]`,
        );
      }
      tidy(() => {
        const decayed = wd !== 0 && (o.decays?.(name) ?? true) ? add(g, mul(w, wd)) : g;
        const scaled = o.velocity === 'step' ? mul(decayed, lr) : decayed;
        const v = this.slots.get(name);
        // The first velocity is the first gradient (PyTorch; MindSpore's zero start gives the same).
        const velocity =
          v === undefined ? scaled : add(mul(v, mu), damp === 0 ? scaled : mul(scaled, 1 - damp));
        if (v === undefined) this.slots.set(name, variable(clone(velocity), false));
        else v.assign(velocity);
        const direction = o.nesterov ? add(scaled, mul(velocity, mu)) : velocity;
        w.assign(sub(w, o.velocity === 'step' ? direction : mul(direction, lr)));
      });
    }
    this.steps += 1;
  }

  /** Velocities by parameter name (`<name>/momentum`) and the step count, for checkpoints. */
  state(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [name, v] of this.slots) out[`${name}/momentum`] = v;
    return out;
  }

  get stepCount(): number {
    return this.steps;
  }

  restore(slots: Record<string, Tensor>, steps: number): void {
    for (const [key, t] of Object.entries(slots)) {
      if (!key.endsWith('/momentum')) continue;
      const name = key.slice(0, -'/momentum'.length);
      const w = this.params.get(name);
      if (w === undefined) throw new Error(`MomentumSGD.restore: slot '${key}' names no parameter`);
      if (t.shape.length !== w.shape.length || t.shape.some((d, i) => d !== w.shape[i])) {
        throw new Error(
          `MomentumSGD.restore: slot '${key}' has shape [${t.shape}], parameter [${w.shape}]`,
        );
      }
      const existing = this.slots.get(name);
      if (existing !== undefined) existing.assign(t);
      else {
        const copy = clone(t);
        this.slots.set(name, variable(copy, false));
        copy.dispose();
      }
    }
    this.steps = steps;
  }

  dispose(): void {
    for (const v of this.slots.values()) v.dispose();
    this.slots.clear();
  }
}
