/** Rounds half to even, as Python's `round()` does (torchvision's crop sizes use it): 2.5 → 2, 3.5 → 4. */
export function pythonRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
