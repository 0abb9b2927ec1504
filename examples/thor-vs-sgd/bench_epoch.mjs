// `npm run bench:epoch` (from the repository root): the reproduction's figure a user sees, one
// epoch of its SGD run on its own prepared images (all 60,000 Fashion-MNIST training images,
// RandomResizedCrop(28, [0.25, 1]) and a flip, the ResNet-8, batch 128 as 8 ranks of 16, Nesterov
// SGD), with thor-ts as `npm run reproduce` trains (one process per core, each training its ranks'
// micro-batches in turn) and on 8 processes (a process per rank), and with PyTorch 1.13 on the
// same cores in the same run, both ways PyTorch users run it: one process with all the cores'
// threads, and 8 processes with Gloo (DDP). Images per second over the epoch's training
// (evaluation excluded, data loading included), and thor-ts's (the reproduction's layout) over
// the faster PyTorch's, and where rank 0's steps went in the reproduction's layout (the trainer's
// steps.csv: waiting for data, the passes, the all-reduce, the update). Prints a table and one
// JSON line. `--data <dir>` trains on another prepared tree; `--rounds n` repeats (medians).
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

import { settings, TRAIN_PER_CLASS } from './regimes.mjs';
import { asRanks, defaultProcesses, fashionMnist, RANKS, resumableRun, root } from './runs.mjs';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    rounds: { type: 'string', default: '1' },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
const rounds = Number(values.rounds);
const NPROC = defaultProcesses();
const data = await fashionMnist(TRAIN_PER_CLASS, values.data);
const { sgd } = await settings();
const cores = availableParallelism();
const load = loadavg()[0];

/** The phases of rank 0's steps in steps.csv (the trainer's timing), as shares of their sum. */
async function stepShares(out) {
  const [header, ...lines] = (await readFile(join(out, 'steps.csv'), 'utf8')).trim().split('\n');
  const columns = header.split(',');
  const phases = ['data_ms', 'compute_ms', 'allreduce_ms', 'update_ms'];
  const sums = phases.map((p) => {
    const i = columns.indexOf(p);
    return lines.reduce((t, l) => t + Number(l.split(',')[i]), 0);
  });
  const total = sums.reduce((a, b) => a + b, 0);
  return Object.fromEntries(phases.map((p, i) => [p.replace('_ms', ''), sums[i] / total]));
}

/** thor-ts: one epoch of the reproduction's SGD run on `nproc` processes; images per training second. */
async function ours(round, nproc) {
  const out = join(root, 'runs', 'bench-epoch', `round-${round}-${nproc}`);
  await rm(out, { recursive: true, force: true });
  const config = asRanks(
    { ...sgd, data, out, epochs: 1, evalsPerEpoch: 1, seed: round + 1 },
    nproc,
    'bench:epoch',
  );
  const { metrics } = await resumableRun({ config, nproc });
  const m = metrics.at(-1);
  if (nproc === NPROC) runs.shares.push(await stepShares(out));
  return (m.step * config.batchSize) / m.trainSeconds;
}

/** How torch_epoch.py set PyTorch's memory allocator up (see scripts/torch_peer.py). */
let allocator = 'unknown';

/** PyTorch, `mode` 'single' (n threads) or 'ddp' (n processes): images per second. */
async function torch(mode, n) {
  const script = fileURLToPath(new URL('./torch_epoch.py', import.meta.url));
  const args = [script, mode, data, String(sgd.batchSize), String(n), String(10 ** 9)];
  const { stdout } = await promisify(execFile)(values.python, args, { maxBuffer: 1 << 24 });
  const result = JSON.parse(stdout.trim().split('\n').at(-1));
  allocator = result.allocator;
  return result.images / result.seconds;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const runs = { ours: [], perRank: [], single: [], ddp: [], shares: [] };
for (let r = 0; r < rounds; r++) {
  runs.ours.push(await ours(r, NPROC));
  if (NPROC !== RANKS) runs.perRank.push(await ours(r, RANKS));
  runs.single.push(await torch('single', cores));
  runs.ddp.push(await torch('ddp', RANKS));
}
const row = {
  ours: median(runs.ours),
  ...(runs.perRank.length > 0 ? { perRank: median(runs.perRank) } : {}),
  single: median(runs.single),
  ddp: median(runs.ddp),
};
const peer = Math.max(row.single, row.ddp);
const line = (label, value) => console.log(`  ${label.padEnd(48)}${value}`);
console.log(
  `one epoch of the reproduction's SGD run (${data}), batch ${sgd.batchSize} as ${RANKS} ranks, ` +
    `${cores} cores, load average ${load.toFixed(2)} before, median of ${rounds} round(s):`,
);
line(
  `thor-ts, ${NPROC} processes × ${RANKS / NPROC} micro-batches (reproduce)`,
  `${row.ours.toFixed(0).padStart(6)} img/s`,
);
if (row.perRank !== undefined) {
  line(`thor-ts, ${RANKS} processes over the ring`, `${row.perRank.toFixed(0).padStart(6)} img/s`);
}
line(`PyTorch 1 process, ${cores} threads`, `${row.single.toFixed(0).padStart(6)} img/s`);
line(`PyTorch ${RANKS} processes, Gloo (DDP)`, `${row.ddp.toFixed(0).padStart(6)} img/s`);
line("PyTorch's allocator", allocator);
line('thor-ts (reproduce) / the faster PyTorch', `${(row.ours / peer).toFixed(2).padStart(6)}×`);
// Where rank 0's steps went in the reproduction's layout (steps.csv), medians over the rounds.
const shares = Object.fromEntries(
  ['compute', 'allreduce', 'data', 'update'].map((k) => [k, median(runs.shares.map((s) => s[k]))]),
);
const pct = (x) => `${(100 * x).toFixed(1)}%`;
line(
  `thor-ts (reproduce), rank 0's steps`,
  `passes ${pct(shares.compute)}, all-reduce ${pct(shares.allreduce)}, waiting for data ${pct(shares.data)}, update ${pct(shares.update)}`,
);
console.log(
  JSON.stringify({
    bench: 'epoch',
    cores,
    load,
    rounds,
    processes: NPROC,
    ...row,
    ratio: row.ours / peer,
    shares,
    allocator,
    runs,
  }),
);
