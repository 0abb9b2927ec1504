// One rank of `npm run bench:allreduce` (or bench:allreduce:network): times allReduce at each size (wall-clock and this
// process's CPU time per all-reduce, in rounds of back-to-back calls), prints JSON on stdout.
import { joinRing } from '../dist/index.js';

const [rank, worldSize, coordinator, sizesArg, itersArg] = process.argv.slice(2);
const ring = await joinRing({
  rank: Number(rank),
  worldSize: Number(worldSize),
  coordinator: coordinator as string,
  token: process.env.BENCH_TOKEN as string,
  unixSockets: process.env.BENCH_TRANSPORT !== 'tcp',
  // On a network of namespaces (bench/allreduce_network.ts): this machine's address, and rank 0
  // hosts the coordinator.
  ...(process.env.BENCH_ADDRESS
    ? {
        listenHost: '0.0.0.0',
        advertiseHost: process.env.BENCH_ADDRESS,
        hostCoordinator: '0.0.0.0',
      }
    : {}),
  log: (l) => console.error(`[rank ${rank}] ${l}`),
});
const times: Record<string, number[]> = {};
const cpu: Record<string, number[]> = {};
const ROUNDS = 5;
/** Untimed all-reduces before the rounds of each size, as nccl-tests' default `-w 5`. */
const WARMUP = 5;
for (const bytes of (sizesArg as string).split(',').map(Number)) {
  const buf = new Float32Array(bytes / 4);
  const iters = Math.max(3, Math.min(Number(itersArg), Math.round(2e8 / bytes)));
  // Checked once; then zeros, so that back-to-back sums stay finite.
  buf.fill(1);
  await ring.allReduce(buf);
  if (buf[0] !== Number(worldSize) || buf[buf.length - 1] !== Number(worldSize)) {
    throw new Error(`rank ${rank}: ${bytes} bytes: expected ${worldSize}, got ${buf[0]}`);
  }
  buf.fill(0);
  for (let i = 0; i < WARMUP; i++) await ring.allReduce(buf);
  const t: number[] = [];
  const c: number[] = [];
  // Like nccl-tests: each round times `iters` all-reduces back to back after one barrier.
  for (let round = 0; round < ROUNDS; round++) {
    await ring.barrier();
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) await ring.allReduce(buf);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const used = process.cpuUsage(c0);
    t.push(ms / iters);
    c.push((used.user + used.system) / 1e3 / iters);
  }
  times[bytes] = t;
  cpu[bytes] = c;
}
await ring.close();
console.log(JSON.stringify({ ms: times, cpu }));
