// npm run bench:threads [-- --batch 16 --reps 7 --workers 2]
//
// Whether threads inside one process train faster than one process per core. The convolutions
// are nearly all of a ResNet-50 step, so this times the package's convolution (`conv_gemm`, the
// forward pass's kernel) on ResNet-50 shapes at a batch of `--batch` images, three ways on the
// same cores: one thread; `--workers` worker threads of one process over one shared wasm memory,
// each computing its share of the output positions with the filter packed once (as a threaded
// backend would); and `--workers` processes, each with its own memory, each computing the
// convolution for its share of the images at the same time (as one process per core does). Prints
// milliseconds per batch (medians of --reps) and the threads' speed over the processes'.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

interface Shape {
  name: string;
  h: number;
  ci: number;
  co: number;
  k: number;
  s: number;
}

const shapes: Shape[] = [
  { name: 'l1 3x3 64', h: 56, ci: 64, co: 64, k: 3, s: 1 },
  { name: 'l1 1x1 64>256', h: 56, ci: 64, co: 256, k: 1, s: 1 },
  { name: 'l2 3x3 128', h: 28, ci: 128, co: 128, k: 3, s: 1 },
  { name: 'l3 3x3 256', h: 14, ci: 256, co: 256, k: 3, s: 1 },
  { name: 'l4 3x3 512', h: 7, ci: 512, co: 512, k: 3, s: 1 },
];

type Kernels = Record<string, (...args: number[]) => number>;
const wasmDir = new URL('../wasm/', import.meta.url);
const PAGE = 65536;

function instantiate(memory: WebAssembly.Memory, shared: boolean): Kernels {
  const file = shared ? 'training_kernels_shared.wasm' : 'training_kernels.wasm';
  const module = new WebAssembly.Module(readFileSync(new URL(file, wasmDir)));
  return new WebAssembly.Instance(module, { env: { memory } }).exports as Kernels;
}

/** Where a convolution's operands lie in memory, for `images` images and `parts` scratch areas. */
function layout(k: Kernels, sh: Shape, images: number, parts: number) {
  const { h, ci, co, k: kk, s } = sh;
  const ho = Math.ceil(h / s);
  const pad = Math.floor((kk - 1) / 2);
  const positions = images * ho * ho;
  const depth = kk * kk * ci;
  const rows = Math.min(positions, Math.max(4, Math.floor((1 << 19) / depth / 4) * 4));
  const scratchFloats = k['conv_gemm_scratch_floats']!(rows, kk * kk, ci);
  const sizes = [images * h * h * ci, depth * co, k['gemm_packed_floats']!(depth, co)];
  sizes.push(positions * co, ...Array<number>(parts).fill(scratchFloats));
  const at: number[] = [];
  let end = 1 << 20; // past the pages the module reserves for itself
  for (const n of sizes) {
    at.push(end);
    end += Math.ceil((n * 4) / 64) * 64;
  }
  const [x, w, packed, y, ...scratch] = at as [number, number, number, number, ...number[]];
  return { ho, pad, positions, depth, rows, x, w, packed, y, scratch, bytes: end };
}

/** Output positions [p0, p1) of the convolution, in chunks of `rows` as the kernel runs them. */
function convRange(
  k: Kernels,
  sh: Shape,
  l: ReturnType<typeof layout>,
  p0: number,
  p1: number,
  scratch: number,
) {
  for (let r0 = p0; r0 < p1; r0 += l.rows) {
    const m = Math.min(l.rows, p1 - r0);
    k['conv_gemm']!(
      l.x,
      l.packed,
      l.y + r0 * sh.co * 4,
      sh.h,
      sh.h,
      sh.ci,
      l.ho,
      l.ho,
      sh.k,
      sh.k,
      sh.s,
      sh.s,
      l.pad,
      l.pad,
      sh.co,
      r0,
      m,
      scratch,
    );
  }
}

function fill(memory: WebAssembly.Memory, l: ReturnType<typeof layout>, sh: Shape, images: number) {
  const f = new Float32Array(memory.buffer);
  const nx = images * sh.h * sh.h * sh.ci;
  for (let i = 0; i < nx; i++) f[l.x / 4 + i] = Math.sin(i);
  for (let i = 0; i < l.depth * sh.co; i++) f[l.w / 4 + i] = Math.cos(i) * 0.05;
}

/**
 * A worker thread: the same kernels over the shared memory, computing its range of output
 * positions (the chunks of `convRange`) each time it is told to. Plain JavaScript, run with `eval`,
 * so no TypeScript loader is needed in the thread.
 */
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const { memory, sh, l, range, scratch, wasm } = workerData;
const k = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(wasm)), { env: { memory } }).exports;
parentPort.postMessage('ready');
parentPort.on('message', () => {
  for (let r0 = range[0]; r0 < range[1]; r0 += l.rows) {
    const m = Math.min(l.rows, range[1] - r0);
    k.conv_gemm(l.x, l.packed, l.y + r0 * sh.co * 4, sh.h, sh.h, sh.ci, l.ho, l.ho, sh.k, sh.k, sh.s, sh.s, l.pad, l.pad, sh.co, r0, m, scratch);
  }
  parentPort.postMessage('done');
});
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One process, one thread: ms per convolution of `images` images. */
function single(sh: Shape, images: number, reps: number): number {
  const probe = instantiate(new WebAssembly.Memory({ initial: 16 }), false);
  const l = layout(probe, sh, images, 1);
  const memory = new WebAssembly.Memory({ initial: Math.ceil(l.bytes / PAGE) });
  const k = instantiate(memory, false);
  fill(memory, l, sh, images);
  const times: number[] = [];
  for (let r = 0; r <= reps; r++) {
    const t = performance.now();
    k['gemm_pack']!(l.w, sh.co, 1, l.depth, sh.co, l.packed);
    convRange(k, sh, l, 0, l.positions, l.scratch[0]!);
    if (r > 0) times.push(performance.now() - t);
  }
  return median(times);
}

/** One process, `workers` threads over one shared memory: ms per convolution of `images` images. */
async function threaded(sh: Shape, images: number, reps: number, workers: number): Promise<number> {
  const probe = instantiate(new WebAssembly.Memory({ initial: 16 }), false);
  const l = layout(probe, sh, images, workers);
  const pages = Math.ceil(l.bytes / PAGE);
  // `shared` is missing from @types/node's descriptor type; Node.js has had it since 16.
  const memory = new WebAssembly.Memory({
    initial: pages,
    maximum: pages,
    shared: true,
  } as { initial: number });
  const k = instantiate(memory, true);
  fill(memory, l, sh, images);
  // Each thread's share of the output positions, in whole tiles of 4.
  const share = Math.ceil(l.positions / workers / 4) * 4;
  const pool = Array.from({ length: workers }, (_, i) => {
    const range = [i * share, Math.min(l.positions, (i + 1) * share)];
    return new Worker(workerSource, {
      eval: true,
      workerData: {
        memory,
        sh,
        l,
        range,
        scratch: l.scratch[i],
        wasm: fileURLToPath(new URL('training_kernels_shared.wasm', wasmDir)),
      },
    });
  });
  await Promise.all(pool.map((w) => new Promise((ok) => w.once('message', ok))));
  const times: number[] = [];
  for (let r = 0; r <= reps; r++) {
    const t = performance.now();
    k['gemm_pack']!(l.w, sh.co, 1, l.depth, sh.co, l.packed);
    await Promise.all(
      pool.map((w) => new Promise((ok) => (w.once('message', ok), w.postMessage('go')))),
    );
    if (r > 0) times.push(performance.now() - t);
  }
  await Promise.all(pool.map((w) => w.terminate()));
  return median(times);
}

/** `workers` processes at once, each on images / workers images: ms per convolution of them all. */
async function processes(
  sh: Shape,
  images: number,
  reps: number,
  workers: number,
): Promise<number> {
  const each = await Promise.all(
    Array.from({ length: workers }, () => {
      const child = fork(
        fileURLToPath(import.meta.url),
        ['--child', JSON.stringify({ sh, images: images / workers, reps })],
        {
          execArgv: ['--import', 'tsx'],
        },
      );
      return new Promise<number>((ok, fail) => {
        child.once('message', (ms) => ok(ms as number));
        child.once('exit', (code) =>
          code === 0
            ? undefined
            : fail(new Error(`bench:threads: a child process exited with ${code}`)),
        );
      });
    }),
  );
  return Math.max(...each);
}

if (process.argv[2] === '--child') {
  const { sh, images, reps } = JSON.parse(process.argv[3]!) as {
    sh: Shape;
    images: number;
    reps: number;
  };
  process.send!(single(sh, images, reps));
} else {
  const { values } = parseArgs({
    options: {
      batch: { type: 'string', default: '16' },
      reps: { type: 'string', default: '7' },
      workers: { type: 'string', default: '2' },
    },
  });
  const batch = Number(values.batch);
  const reps = Number(values.reps);
  const workers = Number(values.workers);
  if (!Number.isInteger(batch / workers)) {
    throw new Error(
      `bench:threads: expected --batch divisible by --workers, found ${batch} and ${workers}`,
    );
  }
  console.log(
    `the package's convolution (conv_gemm) at batch ${batch}, ms per batch (median of ${reps}): ` +
      `1 thread, ${workers} threads in one process (shared memory), ${workers} processes (${batch / workers} images each)`,
  );
  console.log(
    `${'shape'.padEnd(16)} ${'GFLOP'.padStart(6)} ${'1 thread'.padStart(9)} ${'threads'.padStart(9)} ${'processes'.padStart(9)} ${'threads/processes speed'.padStart(24)}`,
  );
  const rows = [];
  let sum = { threads: 0, processes: 0, single: 0 };
  for (const sh of shapes) {
    const ho = Math.ceil(sh.h / sh.s);
    const gflop = (2 * batch * ho * ho * sh.k * sh.k * sh.ci * sh.co) / 1e9;
    const one = single(sh, batch, reps);
    const thr = await threaded(sh, batch, reps, workers);
    const proc = await processes(sh, batch, reps, workers);
    sum = { threads: sum.threads + thr, processes: sum.processes + proc, single: sum.single + one };
    rows.push({ ...sh, gflop, single: one, threads: thr, processes: proc });
    console.log(
      `${sh.name.padEnd(16)} ${gflop.toFixed(2).padStart(6)} ${one.toFixed(1).padStart(9)} ${thr.toFixed(1).padStart(9)} ${proc.toFixed(1).padStart(9)} ${(proc / thr).toFixed(2).padStart(23)}×`,
    );
  }
  console.log(
    `${'all'.padEnd(16)} ${''.padStart(6)} ${sum.single.toFixed(1).padStart(9)} ${sum.threads.toFixed(1).padStart(9)} ${sum.processes.toFixed(1).padStart(9)} ${(sum.processes / sum.threads).toFixed(2).padStart(23)}×`,
  );
  console.log(
    JSON.stringify({
      bench: 'threads',
      batch,
      reps,
      workers,
      rows,
      ratio: sum.processes / sum.threads,
    }),
  );
}
