// The tables of `bench:profile`: ours (by phase, then by kernel) with PyTorch's beside them.
import { phases, type KernelTotals, type WasmProfile } from './step_profile.js';
import type { TorchProfile } from './torch_profile.js';

const pct = (ms: number, of: number) => `${((100 * ms) / of).toFixed(1)}%`;
const ms = (x: number) => x.toFixed(0);
const rate = (k: KernelTotals) =>
  k.kind === 'view'
    ? 'view'
    : `${(k.amount / 1e6 / k.ms).toFixed(1)} ${k.kind === 'flops' ? 'GFLOP/s' : 'GB/s'}`;
const shortOp = (name: string) =>
  name.replace('autograd::engine::evaluate_function: ', 'autograd: ').slice(0, 40);
const sumMs = (xs: { ms: number }[]) => xs.reduce((s, x) => s + x.ms, 0);
const callsOf = (xs: { calls: number }[]) => xs.reduce((s, x) => s + x.calls, 0);

/** Cells padded to `widths`: the first left-aligned, the rest right-aligned. */
const row = (widths: number[]) => (cells: (string | number)[]) =>
  cells
    .map((c, i) =>
      i === 0 ? String(c).padEnd(widths[0] ?? 0) : String(c).padStart(widths[i] ?? 0),
    )
    .join(' ');

/** Lines to print: the phases, the `top` kernels and ops, and the convolutions' throughput. */
export function profileTables(
  mine: WasmProfile,
  peer: TorchProfile | undefined,
  top: number,
): string[] {
  const lines: string[] = [];
  const side = (left: string, right: string) =>
    lines.push(peer === undefined ? left : `${left} │ ${right}`);
  const name = peer === undefined ? '' : peer.peer.replace('pytorch', 'PyTorch');

  const P = row([10, 9, 9, 7, 9, 7]);
  const head = ['phase', 'plain ms', 'profiled', 'share'];
  side(P([...head, 'kernels', 'other']), P([...head, 'ops', 'other']));
  for (const p of [...phases, 'step'] as const) {
    const m = p === 'step' ? mine : mine.phases[p];
    const mPlain = p === 'step' ? mine.plainStepMs : mine.plainPhasesMs[p];
    const t = peer === undefined ? undefined : p === 'step' ? peer : peer.phases[p];
    const tPlain =
      peer === undefined ? NaN : p === 'step' ? peer.plainStepMs : peer.plainPhasesMs[p];
    side(
      P([
        p,
        ms(mPlain),
        ms(m.wallMs),
        pct(m.wallMs, mine.wallMs),
        ms(m.kernelMs),
        ms(m.wallMs - m.kernelMs),
      ]),
      t === undefined || peer === undefined
        ? ''
        : P([
            p,
            ms(tPlain),
            ms(t.wallMs),
            pct(t.wallMs, peer.wallMs),
            ms(t.opsMs),
            ms(t.wallMs - t.opsMs),
          ]),
    );
  }

  lines.push('');
  const L = row([24, 6, 8, 6, 14]);
  const R = row([40, 6, 8, 6]);
  const ops = peer?.ops ?? [];
  const peerMs = peer?.wallMs ?? NaN;
  side(
    L(['thor-ts wasm kernel', 'calls', 'ms', 'share', 'rate']),
    R([`${name} op (self CPU)`, 'calls', 'ms', 'share']),
  );
  for (let i = 0; i < top; i++) {
    const k = mine.kernels[i];
    const o = ops[i];
    side(
      k === undefined
        ? L(['', '', '', '', ''])
        : L([k.name, k.calls, ms(k.ms), pct(k.ms, mine.wallMs), rate(k)]),
      o === undefined ? '' : R([shortOp(o.name), o.calls, ms(o.ms), pct(o.ms, peerMs)]),
    );
  }
  const restK = mine.kernels.slice(top);
  const restO = ops.slice(top);
  side(
    L([
      `${restK.length} other kernels`,
      callsOf(restK),
      ms(sumMs(restK)),
      pct(sumMs(restK), mine.wallMs),
      '',
    ]),
    R([`${restO.length} other ops`, callsOf(restO), ms(sumMs(restO)), pct(sumMs(restO), peerMs)]),
  );
  const otherMine = mine.wallMs - mine.kernelMs;
  const otherPeer = peerMs - (peer?.opsMs ?? NaN);
  side(
    L(['engine bookkeeping/other', '', ms(otherMine), pct(otherMine, mine.wallMs), '']),
    R(['Python and other (outside ops)', '', ms(otherPeer), pct(otherPeer, peerMs)]),
  );
  side(
    L(['step', callsOf(mine.kernels), ms(mine.wallMs), '100%', '']),
    R(['step', callsOf(ops), ms(peerMs), '100%']),
  );

  const flopRows = mine.kernels.filter((k) => k.kind === 'flops');
  const flops = flopRows.reduce((s, k) => s + k.amount, 0);
  const gflops = (ms: number) => (flops / 1e6 / ms).toFixed(1);
  lines.push(
    '',
    `convolutions and matrix products: ${(flops / 1e9).toFixed(0)} GFLOP per step, ` +
      `${gflops(sumMs(flopRows))} GFLOP/s in those kernels (wasm)`,
    `GFLOP/s over the whole step: wasm ${gflops(mine.wallMs)} profiled, ${gflops(mine.plainStepMs)} plain` +
      (peer === undefined
        ? ''
        : `; ${name} ${gflops(peer.wallMs)} profiled, ${gflops(peer.plainStepMs)} plain (same network)`),
  );
  if (mine.composites.length > 0)
    lines.push(
      `engine bookkeeping/other includes the own time of tf.customGrad ops (their kernels are above): ` +
        mine.composites.map((c) => `${c.name} ${c.ms.toFixed(1)} ms`).join(', '),
    );
  return lines;
}
