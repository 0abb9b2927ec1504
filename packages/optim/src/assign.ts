/**
 * Assigns each layer's inversion to one of `workers`, largest first to the least-loaded worker,
 * with cost Σ over its blocks of b³ (kfac-pytorch's greedy scheme). Returns layer → worker.
 */
export function assignInversions(costs: Map<string, number>, workers: number): Map<string, number> {
  if (!(Number.isInteger(workers) && workers > 0)) {
    throw new Error(`assignInversions: expected a positive number of workers, found ${workers}`);
  }
  const load = new Array<number>(workers).fill(0);
  const out = new Map<string, number>();
  for (const [layer, cost] of [...costs].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))) {
    let best = 0;
    for (let w = 1; w < workers; w++) if ((load[w] as number) < (load[best] as number)) best = w;
    load[best] = (load[best] as number) + cost;
    out.set(layer, best);
  }
  return out;
}

/** The inversion cost of a factor of dimension `dim` split in blocks of `block`: Σ b³. */
export function inversionCost(dim: number, block: number | null): number {
  const b = block ?? dim;
  const full = Math.floor(dim / b);
  const rest = dim - full * b;
  return full * b ** 3 + (rest > 0 ? b ** 3 : 0);
}
