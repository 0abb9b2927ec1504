/** A hyperparameter: a constant, or a function of the step (0-based, counting optimizer steps). */
export type Schedule = number | ((step: number) => number);

export function valueAt(s: Schedule, step: number): number {
  return typeof s === 'number' ? s : s(step);
}

/** MindSpore's fractional epoch of step i: e = (i + 1) / stepsPerEpoch. */
const epochOf = (step: number, stepsPerEpoch: number) => (step + 1) / stepsPerEpoch;

/**
 * THOR's learning rate in MindSpore's resnet_thor: lr(e) = base · (1 − e / decayEpochs)^power,
 * halved once from epoch `halvings[0]` and again from `halvings[1]` (Ascend: 0.045, 70, 6, [39, 40];
 * GPU: 0.05672, 50, 4.9687, none).
 */
export function thorLearningRate(
  stepsPerEpoch: number,
  { base = 0.045, decayEpochs = 70, power = 6, halvings = [39, 40] } = {},
): (step: number) => number {
  return (step) => {
    const e = epochOf(step, stepsPerEpoch);
    let lr = base * Math.pow(Math.max(0, 1 - e / decayEpochs), power);
    for (const h of halvings) if (e >= h) lr /= 2;
    return lr;
  };
}

/** THOR's damping: λ(e) = base · decay^(e / 10) (Ascend: 0.03, 0.87; GPU: 0.02345, 0.5467). */
export function thorDamping(
  stepsPerEpoch: number,
  { base = 0.03, decay = 0.87 } = {},
): (step: number) => number {
  return (step) => base * Math.pow(decay, epochOf(step, stepsPerEpoch) / 10);
}

/** From `from` at step 0 to `to` at `totalSteps`, linearly (the reference's SGD baseline: 0.1 → 0). */
export function linearDecay(
  from: number,
  to: number,
  totalSteps: number,
): (step: number) => number {
  return (step) => from + (to - from) * Math.min(1, step / totalSteps);
}

/**
 * `from` · (1 − min(step, totalSteps)/totalSteps)^power (PyTorch's PolynomialLR): power 1 is
 * `linearDecay` to 0; a higher power spends more of the run at a small rate, as THOR's reference
 * schedule does (its 0.045·(1 − e/70)⁶ over 45 epochs is close to power 3.5 over the run).
 */
export function polynomialDecay(
  from: number,
  totalSteps: number,
  power: number,
): (step: number) => number {
  return (step) => from * Math.pow(1 - Math.min(step, totalSteps) / totalSteps, power);
}

/** Cosine from `from` to `to` over `totalSteps` (SGDR without restarts). */
export function cosineDecay(from: number, totalSteps: number, to = 0): (step: number) => number {
  return (step) =>
    to + ((from - to) * (1 + Math.cos((Math.PI * Math.min(step, totalSteps)) / totalSteps))) / 2;
}

/** `base` multiplied by `gamma` at each milestone step passed (PyTorch's MultiStepLR). */
export function stepDecay(
  base: number,
  milestones: number[],
  gamma = 0.1,
): (step: number) => number {
  return (step) => base * Math.pow(gamma, milestones.filter((m) => step >= m).length);
}

/** Linear warm-up from `start` · s(warmupSteps) to the schedule over the first `warmupSteps` steps. */
export function linearWarmup(
  s: Schedule,
  warmupSteps: number,
  start = 0,
): (step: number) => number {
  return (step) => {
    if (step >= warmupSteps) return valueAt(s, step);
    const target = valueAt(s, warmupSteps);
    return target * (start + ((1 - start) * step) / warmupSteps);
  };
}
