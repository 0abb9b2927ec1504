// npm run bench:step [-- --steps 3 --batch 16]
//
// The ResNet-50 v1.5 train step (224², momentum SGD) on wasm beside PyTorch on the same cores in
// the same run: PyTorch with one process and as many threads as cores; ours with one process per
// core (the wasm backend runs one thread per process in Node), each on batch / cores images,
// started together. Gradients are not all-reduced between our processes (that is the
// distributed package's work); the figure is the compute of a data-parallel step.
// Prints a table and one JSON line; img/s are medians over --steps steps after a warm-up step.
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
  },
});
const procs = Number(values.procs);
const batch = Number(values.batch);
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

interface StepResult {
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

const peer = await torch();
const mine = await ours();
console.log(`ResNet-50 train step, 224², global batch ${batch}, ${procs} cores`);
if (typeof peer === 'string') console.log(`PyTorch: ${peer}`);
else
  console.log(
    `PyTorch (1 process, ${procs} threads):       ${peer.secondsPerStep.toFixed(2)} s/step  ${peer.imagesPerSecond.toFixed(2)} img/s`,
  );
console.log(
  `thor-ts wasm (${procs} processes × ${batch / procs} images): ${mine.secondsPerStep.toFixed(2)} s/step  ${mine.imagesPerSecond.toFixed(2)} img/s`,
);
if (typeof peer !== 'string')
  console.log(
    `ratio (ours / PyTorch img/s): ${(mine.imagesPerSecond / peer.imagesPerSecond).toFixed(2)}`,
  );
console.log(JSON.stringify({ bench: 'step', batch, procs, pytorch: peer, wasm: mine }));
