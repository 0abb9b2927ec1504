import * as tf from '@tensorflow/tfjs-core';
import type { Model } from '@thor-ts/model';

/** Whether every value of `values` is finite (no NaN, no ±Infinity). */
export function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) {
    // NaN fails both comparisons; ±Infinity fails one.
    const v = values[i] as number;
    if (!(v > -Infinity && v < Infinity)) return false;
  }
  return true;
}

/**
 * The model's buffers and counters (batch norm's running statistics and batch counts) as they were
 * before a step, so that a step that turns out non-finite can be undone: its forward pass has
 * already folded the batch's statistics into them.
 */
export class BufferSnapshot {
  private readonly saved: { v: tf.Variable; copy: tf.Tensor }[] = [];
  private readonly counters: { c: { value: number }; value: number }[] = [];

  constructor(model: Model) {
    for (const e of model.state.entries) {
      if (e.kind === 'buffer' && e.variable !== undefined) {
        this.saved.push({ v: e.variable, copy: tf.clone(e.variable) });
      } else if (e.kind === 'counter' && e.counter !== undefined) {
        this.counters.push({ c: e.counter, value: e.counter.value });
      }
    }
  }

  /** Puts the buffers and counters back as they were, and frees the copies. */
  restore(): void {
    for (const { v, copy } of this.saved) v.assign(copy);
    for (const { c, value } of this.counters) c.value = value;
    this.dispose();
  }

  dispose(): void {
    for (const { copy } of this.saved) copy.dispose();
    this.saved.length = 0;
  }
}

/** Whether every buffer of the model (batch norm's running statistics) is finite. */
export function finiteBuffers(model: Model): boolean {
  return model.state.entries.every(
    (e) =>
      e.kind !== 'buffer' ||
      e.variable === undefined ||
      allFinite(e.variable.dataSync() as Float32Array),
  );
}

/** The names of the model's parameters and buffers that hold a non-finite value. */
export function nonFiniteState(model: Model): string[] {
  return model.state.entries
    .filter((e) => e.variable !== undefined && !allFinite(e.variable.dataSync() as Float32Array))
    .map((e) => e.name);
}
