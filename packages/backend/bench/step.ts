// npm run bench:step [-- --steps 3 --batch 16 --rounds 3]
//
// The ResNet-50 v1.5 train step (224², momentum SGD) on wasm beside PyTorch on the same cores in
// the same run: PyTorch with one process and as many threads as cores; ours with one process per
// core (the wasm backend runs one thread per process in Node), each on batch / cores images,
// started together. Gradients are not all-reduced between our processes (that is the
// distributed package's work); the figure is the compute of a data-parallel step.
// The two alternate for --rounds rounds (a noisy machine slows one side of a round, not the
// figure). Prints a table and one JSON line; a side's s/step in a round is its median over --steps
// steps after a warm-up step; the figures printed are medians over the rounds, the ratio the
// median of the rounds' ratios.
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '3' },
    batch: { type: 'string', default: '16' },
    procs: { type: 'string', default: String(availableParallelism()) },
    rounds: { type: 'string', default: '3' },
  },
});
const rounds = Number(values.rounds);
const procs = Number(values.procs);
const batch = Number(values.batch);
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

interface StepResult {
  /** Ours only: whether the kernels ran relaxed SIMD's fused multiply-add, on which Node.js. */
  relaxedSimd?: boolean;
  node?: string;
  /** PyTorch's only: how its memory allocator was set up (see torch_resnet50_step.py). */
  allocator?: string;
  secondsPerStep: number;
  imagesPerSecond: number;
}

async function jsonLine(cmd: string, args: string[]): Promise<StepResult> {
  const { stdout } = await run(cmd, args, { maxBuffer: 1 << 24 });
  const line = stdout.split('\n').find((l) => l.startsWith('{'));
  if (line === undefined)
    throw new Error(`${cmd} ${args.join(' ')} printed no JSON line:\n${stdout}`);
  return JSON.parse(line) as StepResult;
}

async function torch(): Promise<StepResult | string> {
  try {
    await run('/usr/bin/python3', ['-c', 'import torch, torchvision']);
  } catch {
    return 'not measured: /usr/bin/python3 cannot import torch and torchvision (apt-get install python3-torch python3-torchvision)';
  }
  return jsonLine('/usr/bin/python3', [
    here('torch_resnet50_step.py'),
    '--batch',
    String(batch),
    '--threads',
    String(procs),
    '--steps',
    values.steps,
  ]);
}

async function ours(): Promise<StepResult & { perProcess: StepResult[] }> {
  const per = batch / procs;
  const tsx = fileURLToPath(new URL('../../../node_modules/.bin/tsx', import.meta.url));
  const results = await Promise.all(
    Array.from({ length: procs }, () =>
      jsonLine(tsx, [here('resnet50_step.ts'), '--batch', String(per), '--steps', values.steps]),
    ),
  );
  const seconds = Math.max(...results.map((r) => r.secondsPerStep));
  return { secondsPerStep: seconds, imagesPerSecond: batch / seconds, perProcess: results };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
const peers: (StepResult | string)[] = [];
const mine: (StepResult & { perProcess: StepResult[] })[] = [];
for (let r = 0; r < rounds; r++) {
  peers.push(await torch());
  mine.push(await ours());
}
const measured = peers.filter((p): p is StepResult => typeof p !== 'string');
const ratios = measured.map((p, r) => (mine[r] as StepResult).imagesPerSecond / p.imagesPerSecond);
const oursSeconds = median(mine.map((m) => m.secondsPerStep));
console.log(`ResNet-50 train step, 224², global batch ${batch}, ${procs} cores, ${rounds} rounds`);
if (measured.length === 0) console.log(`PyTorch: ${peers[0] as string}`);
else {
  const s = median(measured.map((p) => p.secondsPerStep));
  console.log(
    `PyTorch (1 process, ${procs} threads):       ${s.toFixed(2)} s/step  ${(batch / s).toFixed(2)} img/s` +
      `  (${measured[0]?.allocator ?? 'allocator unknown'})`,
  );
}
console.log(
  `thor-ts wasm (${procs} processes × ${batch / procs} images): ${oursSeconds.toFixed(2)} s/step  ${(batch / oursSeconds).toFixed(2)} img/s` +
    `  (Node.js ${mine[0]?.perProcess[0]?.node}, relaxed SIMD ${mine[0]?.perProcess[0]?.relaxedSimd ? 'on' : 'off'})`,
);
if (ratios.length > 0) {
  console.log(
    `ratio (ours / PyTorch img/s): ${median(ratios).toFixed(2)} (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})`,
  );
}
console.log(
  JSON.stringify({
    bench: 'step',
    batch,
    procs,
    rounds,
    ratio: ratios.length > 0 ? median(ratios) : null,
    pytorch: peers,
    wasm: mine,
  }),
);
