// `npm run bench:allreduce`: allReduce time and busbw for 8 and 2 ranks, 4 KB to 128 MB, beside
// torch.distributed Gloo in the same run. Each rank is its own process; figures are medians over
// iterations of the slowest rank's time. busbw = bytes / time · 2(n − 1)/n (nccl-tests).
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

import { startCoordinator } from '../dist/index.js';

const SIZES = (process.env.BENCH_SIZES ?? '4096,65536,1048576,16777216,102400000,134217728')
  .split(',')
  .map(Number);
const RANKS = (process.env.BENCH_RANKS ?? '8,2').split(',').map(Number);
const ITERS = Number(process.env.BENCH_ITERS ?? 20);
const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));

type Times = Record<string, number[]>;

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

async function ours(n: number): Promise<Times[]> {
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
          },
        ),
      ),
    );
    return outs.map((o) => JSON.parse(o) as Times);
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

async function gloo(n: number): Promise<Times[] | undefined> {
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
  return JSON.parse(out) as Times[];
}

/** Median over iterations of the slowest rank's time, in ms. */
function median(perRank: Times[], bytes: number): number {
  const runs = perRank.map((t) => t[String(bytes)] as number[]);
  const worst = (runs[0] as number[]).map((_, i) => Math.max(...runs.map((r) => r[i] as number)));
  worst.sort((a, b) => a - b);
  return worst[Math.floor(worst.length / 2)] as number;
}

const busbw = (bytes: number, ms: number, n: number): number =>
  (bytes / (ms / 1e3) / 1e9) * ((2 * (n - 1)) / n);
const fmtBytes = (b: number): string =>
  b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : `${(b / 1e3).toFixed(1)} KB`;

const rows: {
  ranks: number;
  bytes: number;
  ms: number;
  busbw: number;
  glooMs: number | null;
  glooBusbw: number | null;
}[] = [];
for (const n of RANKS) {
  const a = await ours(n);
  const g = await gloo(n);
  for (const bytes of SIZES) {
    const ms = median(a, bytes);
    const gms = g ? median(g, bytes) : null;
    rows.push({
      ranks: n,
      bytes,
      ms,
      busbw: busbw(bytes, ms, n),
      glooMs: gms,
      glooBusbw: gms === null ? null : busbw(bytes, gms, n),
    });
  }
}

console.log('ranks  size        thor-ts ms  busbw GB/s   Gloo ms  busbw GB/s   Gloo/thor-ts');
for (const r of rows) {
  console.log(
    `${String(r.ranks).padStart(5)}  ${fmtBytes(r.bytes).padStart(9)}  ${r.ms.toFixed(2).padStart(10)}  ${r.busbw.toFixed(3).padStart(10)}  ` +
      `${r.glooMs === null ? '        -' : r.glooMs.toFixed(2).padStart(9)}  ${r.glooBusbw === null ? '         -' : r.glooBusbw.toFixed(3).padStart(10)}  ` +
      `${r.glooMs === null ? '-' : (r.glooMs / r.ms).toFixed(2).padStart(12)}`,
  );
}
console.log(JSON.stringify({ bench: 'allreduce', unit: 'ms', rows }));
