// `npm run bench:allreduce:network`: the ring on a simulated network rather than loopback. Each of
// BENCH_HOSTS (default 4) ranks runs in its own network namespace, a "machine" whose link to a
// shared bridge is limited by `tc` to BENCH_LINK_MBIT (default 1000) megabits per second each way,
// as a 1 Gbit/s NIC on a switch. The table gives, per size, the median over rounds of the slowest
// rank's time per all-reduce, the bus bandwidth (nccl-tests': bytes / time · 2(n − 1)/n, what each
// link carries each way per second) and that as a share of the link's rate. Needs Linux, root and
// iproute2 (`ip`, `tc`).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { buildNetwork, netnsUnsupported } from '../test/netns.js';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 4);
const MBIT = Number(process.env.BENCH_LINK_MBIT ?? 1000);
const SIZES = (process.env.BENCH_SIZES ?? '1048576,16777216,102400000').split(',').map(Number);
const ITERS = Number(process.env.BENCH_ITERS ?? 10);
const PORT = 29741;

const why = netnsUnsupported();
if (why !== undefined) {
  console.error(`bench:allreduce:network ${why}`);
  process.exit(1);
}

const net = buildNetwork(HOSTS, 'bn', 233);
process.on('exit', () => net.cleanUp());
net.limit(MBIT);

/** One rank's output (see allreduce_worker.ts), run in machine `r`'s namespace. */
function rank(r: number): Promise<{ ms: Record<string, number[]> }> {
  const worker = fileURLToPath(new URL('./allreduce_worker.ts', import.meta.url));
  const args = ['netns', 'exec', net.ns(r), process.execPath, '--import', 'tsx', worker];
  args.push(String(r), String(HOSTS), `${net.address(0)}:${PORT}`, SIZES.join(','), String(ITERS));
  return new Promise((resolve, reject) => {
    const p = spawn('ip', args, {
      env: {
        ...process.env,
        BENCH_TOKEN: 'b'.repeat(32),
        BENCH_TRANSPORT: 'tcp',
        BENCH_ADDRESS: net.address(r),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`rank ${r} exited ${code}`)),
    );
  });
}

try {
  const ranks = await Promise.all(Array.from({ length: HOSTS }, (_, r) => rank(r)));
  const linkGBs = MBIT / 8 / 1e3;
  console.log(
    `${HOSTS} machines, links of ${MBIT} Mbit/s (${linkGBs.toFixed(3)} GB/s each way)\n` +
      '       size       ms  busbw GB/s  share of link',
  );
  const rows = SIZES.map((bytes) => {
    const runs = ranks.map((t) => t.ms[String(bytes)] as number[]);
    const slowest = (runs[0] as number[]).map((_, i) =>
      Math.max(...runs.map((x) => x[i] as number)),
    );
    const ms = [...slowest].sort((a, b) => a - b)[Math.floor(slowest.length / 2)] as number;
    const busbw = (bytes / (ms / 1e3) / 1e9) * ((2 * (HOSTS - 1)) / HOSTS);
    const share = busbw / linkGBs;
    console.log(
      `${(bytes / 1e6).toFixed(1).padStart(8)} MB  ${ms.toFixed(1).padStart(7)}  ${busbw.toFixed(4).padStart(10)}  ${(100 * share).toFixed(1).padStart(12)}%`,
    );
    return { bytes, ms, busbw, share };
  });
  console.log(JSON.stringify({ bench: 'allreduce-network', hosts: HOSTS, linkMbit: MBIT, rows }));
} finally {
  net.cleanUp();
}
