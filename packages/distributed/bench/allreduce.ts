// `npm run bench:allreduce`: allReduce time and busbw for 8 and 2 ranks, 4 KB to 128 MB, beside
// torch.distributed Gloo in the same run: ours as it runs by default (peers on one machine over
// Unix sockets) and with every link on TCP, as Gloo's are. Each rank is its own process and, after
// 5 untimed all-reduces, times rounds of all-reduces run back to back after one barrier (as
// nccl-tests does); figures are medians over
// rounds of the slowest rank's time per all-reduce. busbw = bytes / time · 2(n − 1)/n
// (nccl-tests). CPU is the median over rounds of the CPU time all ranks' processes spent per
// all-reduce (threads included): on a machine that other work shares, wall-clock times follow the
// load, CPU time less.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

import { startCoordinator } from '../dist/index.js';

const SIZES = (process.env.BENCH_SIZES ?? '4096,65536,1048576,16777216,102400000,134217728')
  .split(',')
  .map(Number);
const RANKS = (process.env.BENCH_RANKS ?? '8,2').split(',').map(Number);
/** `unix`: the default (Unix sockets between peers on one machine); `tcp`: every link on TCP. */
const TRANSPORTS = (process.env.BENCH_TRANSPORTS ?? 'unix,tcp').split(',');
const ITERS = Number(process.env.BENCH_ITERS ?? 20);
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));

type Times = Record<string, number[]>;
/** One rank's wall-clock and CPU milliseconds per iteration, by size. */
interface RankTimes {
  ms: Times;
  cpu: Times;
}

const collect = (
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> =>
  new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}`)),
    );
  });

async function ours(n: number, transport: string): Promise<RankTimes[]> {
  const token = randomBytes(16).toString('hex');
  const c = await startCoordinator({ worldSize: n, token });
  try {
    const outs = await Promise.all(
      Array.from({ length: n }, (_, r) =>
        collect(
          process.execPath,
          [
            '--import',
            'tsx',
            here('./allreduce_worker.ts'),
            String(r),
            String(n),
            c.address,
            SIZES.join(','),
            String(ITERS),
          ],
          {
            ...process.env,
            BENCH_TOKEN: token,
            BENCH_TRANSPORT: transport,
          },
        ),
      ),
    );
    return outs.map((o) => JSON.parse(o) as RankTimes);
  } finally {
    await c.close();
  }
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

async function gloo(n: number): Promise<RankTimes[] | undefined> {
  const ok = await new Promise<boolean>((resolve) =>
    execFile(PYTHON, ['-c', 'import torch.distributed as d; assert d.is_gloo_available()'], (e) =>
      resolve(!e),
    ),
  );
  if (!ok) return undefined;
  const out = await collect(PYTHON, [
    here('./allreduce_gloo.py'),
    String(n),
    String(await freePort()),
    SIZES.join(','),
    String(ITERS),
  ]);
  return JSON.parse(out) as RankTimes[];
}

/** Median over rounds of the slowest rank's wall-clock time per all-reduce, in ms. */
function median(perRank: RankTimes[], bytes: number): number {
  const runs = perRank.map((t) => t.ms[String(bytes)] as number[]);
  const worst = (runs[0] as number[]).map((_, i) => Math.max(...runs.map((r) => r[i] as number)));
  return middle(worst);
}

/** Median over rounds of the CPU time of all ranks together per all-reduce, in ms. */
function medianCpu(perRank: RankTimes[], bytes: number): number {
  const runs = perRank.map((t) => t.cpu[String(bytes)] as number[]);
  return middle(
    (runs[0] as number[]).map((_, i) => runs.reduce((s, r) => s + (r[i] as number), 0)),
  );
}

function middle(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

const busbw = (bytes: number, ms: number, n: number): number =>
  (bytes / (ms / 1e3) / 1e9) * ((2 * (n - 1)) / n);
const fmtBytes = (b: number): string =>
  b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : `${(b / 1e3).toFixed(1)} KB`;

interface Row {
  ranks: number;
  bytes: number;
  /** By transport ('unix', 'tcp'): wall-clock ms, busbw GB/s, CPU ms. */
  ours: Record<string, { ms: number; busbw: number; cpuMs: number }>;
  glooMs: number | null;
  glooBusbw: number | null;
  glooCpuMs: number | null;
}
const rows: Row[] = [];
for (const n of RANKS) {
  const a: Record<string, RankTimes[]> = {};
  for (const t of TRANSPORTS) a[t] = await ours(n, t);
  const g = await gloo(n);
  for (const bytes of SIZES) {
    const gms = g ? median(g, bytes) : null;
    const row: Row = {
      ranks: n,
      bytes,
      ours: {},
      glooMs: gms,
      glooBusbw: gms === null ? null : busbw(bytes, gms, n),
      glooCpuMs: g ? medianCpu(g, bytes) : null,
    };
    for (const [t, times] of Object.entries(a)) {
      const ms = median(times, bytes);
      row.ours[t] = { ms, busbw: busbw(bytes, ms, n), cpuMs: medianCpu(times, bytes) };
    }
    rows.push(row);
  }
}

const cell = (x: number | null | undefined, digits: number, width: number): string =>
  (x === null || x === undefined ? '-' : x.toFixed(digits)).padStart(width);
const ratio = (a: number | null, b: number | undefined): number | null =>
  a === null || b === undefined ? null : a / b;
console.log(
  `ranks       size${TRANSPORTS.map((t) => `  ${t} ms  busbw GB/s  CPU ms`).join('')}    Gloo ms  busbw GB/s  CPU ms` +
    TRANSPORTS.map((t) => `  Gloo/${t}  (CPU)`).join(''),
);
for (const r of rows) {
  const o = TRANSPORTS.map((t) => r.ours[t]);
  console.log(
    `${String(r.ranks).padStart(5)}  ${fmtBytes(r.bytes).padStart(9)}` +
      o
        .map(
          (x, i) =>
            `  ${cell(x?.ms, 2, (TRANSPORTS[i] as string).length + 3)}  ${cell(x?.busbw, 3, 10)}  ${cell(x?.cpuMs, 1, 6)}`,
        )
        .join('') +
      `  ${cell(r.glooMs, 2, 9)}  ${cell(r.glooBusbw, 3, 10)}  ${cell(r.glooCpuMs, 1, 6)}` +
      o
        .map(
          (x, i) =>
            `  ${cell(ratio(r.glooMs, x?.ms), 2, 5 + (TRANSPORTS[i] as string).length)}  ${cell(ratio(r.glooCpuMs, x?.cpuMs), 2, 5)}`,
        )
        .join(''),
  );
}
console.log(JSON.stringify({ bench: 'allreduce', unit: 'ms', transports: TRANSPORTS, rows }));
