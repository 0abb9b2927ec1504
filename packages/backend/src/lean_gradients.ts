import { add, ones, scalar, Tensor, type engine } from '@tensorflow/tfjs-core';

type Engine = ReturnType<typeof engine>;

/** What tfjs 4.22's engine records per op while a tape is on (engine.ts `TapeNode`). */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, Tensor>;
  outputs: Tensor[];
  gradient?: (dys: (Tensor | null)[]) => Record<string, () => Tensor>;
  saved?: Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T>(nameOrFn: string | (() => T), fn?: () => T): T;
}

type Gradients = Engine['gradients'];
const originals = new WeakMap<Engine, Gradients>();

/**
 * Makes `engine.gradients` (behind tf.grad, tf.variableGrads, optimizers) free memory during the
 * backward pass: each op's saved tensors and its outputs' gradients are disposed as soon as the op
 * is differentiated, instead of all at the end. The gradients are the same, computed in the same
 * order; a ResNet train step's peak memory drops by about the size of its activations. Higher-order
 * gradients (a tape inside a tape) keep tfjs's behaviour. Returns whether it was newly installed.
 */
export function installLeanGradients(e: Engine): boolean {
  if (originals.has(e)) return false;
  const original = e.gradients.bind(e) as Gradients;
  originals.set(e, original);
  const lean = function gradients<T extends Tensor>(
    f: () => T,
    xs: Tensor[],
    dy?: T,
    allowNoGradients = false,
  ): { value: T; grads: Tensor[] } {
    const s = e as unknown as EngineInternals;
    // Inside another tape (higher-order gradients) tensors may be needed later: tfjs's own way.
    if (s.state.gradientDepth > 0) return original(f, xs, dy, allowNoGradients);
    if (xs.length === 0) throw new Error('gradients() received an empty list of xs.');
    if (dy != null && dy.dtype !== 'float32') {
      throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
    }
    const y = s.scopedRun(
      () => s.startTape(),
      () => s.endTape(),
      () => s.tidy('forward', f),
    );
    if (!(y instanceof Tensor)) throw new Error('The result y returned by f() must be a tensor.');
    const tape = s.state.activeTape ?? [];
    const filtered = nodesFromXToY(tape, xs, y);
    if (!allowNoGradients && filtered.length === 0) {
      throw new Error(
        'Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed ' +
          'encloses all operations that lead from x to y.',
      );
    }
    return s.tidy('backward', () => {
      // Tensors are numbered in creation order: only those made from here on are ours to free.
      const probe = scalar(0);
      const grads = new GradientMap(xs, probe.id);
      probe.dispose();
      grads.set(y.id, dy ?? ones(y.shape));
      for (let i = filtered.length - 1; i >= 0; i--) {
        backpropNode(filtered[i] as TapeNode, grads, (fn) => s.tidy(fn));
        // This op is done: its saved tensors and its outputs' gradients have no other reader.
        for (const t of (filtered[i] as TapeNode).saved ?? []) t.dispose();
        for (const o of (filtered[i] as TapeNode).outputs) grads.release(o.id);
      }
      const result = xs.map((x) => grads.get(x.id));
      for (const node of tape) for (const t of node.saved ?? []) t.dispose();
      s.state.activeTape = null;
      return { value: y, grads: result as Tensor[] };
    });
  } as Gradients;
  (e as { gradients: Gradients }).gradients = lean;
  return true;
}

/**
 * Gradients by tensor id, disposing a gradient once no id refers to it, if the backward pass made
 * it (id ≥ firstId): a caller's dy, or a forward tensor a gradient function hands back unchanged,
 * is never freed here.
 */
class GradientMap {
  private readonly byId = new Map<number, Tensor>();
  private readonly refs = new Map<Tensor, number>();
  private readonly kept: Set<number>;

  constructor(
    xs: Tensor[],
    private readonly firstId: number,
  ) {
    this.kept = new Set(xs.map((x) => x.id));
  }

  get(id: number): Tensor | undefined {
    return this.byId.get(id);
  }

  set(id: number, t: Tensor): void {
    this.unref(id);
    this.byId.set(id, t);
    this.refs.set(t, (this.refs.get(t) ?? 0) + 1);
  }

  /** Frees a tensor the backward pass made that no entry holds (a summand once summed). */
  drop(t: Tensor): void {
    if (!this.refs.has(t) && t.id >= this.firstId) t.dispose();
  }

  /** Drops the gradient of tensor `id` unless it is one of the requested xs. */
  release(id: number): void {
    if (!this.kept.has(id)) this.unref(id);
  }

  private unref(id: number): void {
    const t = this.byId.get(id);
    if (t === undefined) return;
    this.byId.delete(id);
    const n = (this.refs.get(t) ?? 1) - 1;
    if (n > 0) {
      this.refs.set(t, n);
    } else {
      this.refs.delete(t);
      if (t.id >= this.firstId) t.dispose();
    }
  }
}

/** tfjs's backpropagation of one node (tape.ts `backpropagateGradients`), on a GradientMap. */
function backpropNode(node: TapeNode, grads: GradientMap, tidy: <T>(f: () => T) => T): void {
  const dys = node.outputs.map((o) => grads.get(o.id) ?? null);
  if (node.gradient == null) {
    throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
  }
  const inputGradients = node.gradient(dys);
  for (const inputName in node.inputs) {
    if (!(inputName in inputGradients)) {
      throw new Error(
        `Cannot backprop through input ${inputName}. ` +
          `Available gradients found: ${Object.keys(inputGradients)}.`,
      );
    }
    const dx = tidy(() => (inputGradients[inputName] as () => Tensor)());
    if (dx.dtype !== 'float32') {
      throw new Error(
        `Error in gradient for op ${node.kernelName}. The gradient of input ${inputName} must ` +
          `have 'float32' dtype, but has '${dx.dtype}'`,
      );
    }
    const x = node.inputs[inputName] as Tensor;
    if (dx.shape.length !== x.shape.length || dx.shape.some((d, k) => d !== x.shape[k])) {
      throw new Error(
        `Error in gradient for op ${node.kernelName}. The gradient of input '${inputName}' has ` +
          `shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
      );
    }
    const current = grads.get(x.id);
    if (current === undefined) {
      grads.set(x.id, dx);
    } else {
      grads.set(x.id, add(current, dx));
      grads.drop(dx);
    }
  }
}

/** The nodes on a path from some x to y, inputs pruned to those from x (tape.ts, same rules). */
function nodesFromXToY(tape: TapeNode[], xs: Tensor[], y: Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      node.outputs.forEach((o) => fromX.add(o.id));
      nodesFromX.add(node.id);
    }
  }
  const toY = new Set([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i] as TapeNode;
    if (node.outputs.some((o) => toY.has(o.id))) {
      for (const t of Object.values(node.inputs)) toY.add(t.id);
      nodesToY.add(node.id);
    }
  }
  return tape
    .filter((node) => nodesFromX.has(node.id) && nodesToY.has(node.id))
    .map((node) => ({
      ...node,
      inputs: Object.fromEntries(Object.entries(node.inputs).filter(([, t]) => fromX.has(t.id))),
    }));
}
