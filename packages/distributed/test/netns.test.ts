import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { buildNetwork, netnsUnsupported, type Network } from './netns.js';
import { values } from './with_ring.js';

const WORKER = fileURLToPath(new URL('./fixtures/netns_worker.mjs', import.meta.url));
const N = 4;
const reason = netnsUnsupported();
let net: Network;

interface Result {
  big: Float32Array;
  small: Float32Array;
  transports: string[];
}

function run(r: number, coordinator: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      'ip',
      [
        'netns',
        'exec',
        net.ns(r),
        process.execPath,
        WORKER,
        String(r),
        String(N),
        coordinator,
        net.address(r),
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0)
        return reject(new Error(`rank ${r} in namespace ${net.ns(r)} exited ${code}: ${err}`));
      const j = JSON.parse(out) as { big: string; small: string; transports: string[] };
      const f32 = (b64: string): Float32Array => {
        const b = Buffer.from(b64, 'base64');
        return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
      };
      resolve({ big: f32(j.big), small: f32(j.small), transports: j.transports });
    });
  });
}

describe('the ring across network namespaces', () => {
  it.skipIf(reason !== undefined)(
    `all-reduces between 4 processes, each in its own namespace with its own address on a bridge${reason ? ` (skipped: ${reason})` : ''}`,
    async () => {
      net = buildNetwork(N, 'ring', 231);
      try {
        // Rank 0 hosts the coordinator on its own address; every other rank reaches it over the bridge.
        const out = await Promise.all(
          Array.from({ length: N }, (_, r) => run(r, `${net.address(0)}:29731`)),
        );
        for (const [length, seed, key] of [
          [100_003, 1000, 'big'],
          [7, 2000, 'small'],
        ] as const) {
          const want = new Float64Array(length);
          const abs = new Float64Array(length);
          for (let r = 0; r < N; r++) {
            const x = values(length, seed + r);
            for (let i = 0; i < length; i++) {
              want[i] = (want[i] as number) + (x[i] as number);
              abs[i] = (abs[i] as number) + Math.abs(x[i] as number);
            }
          }
          for (const o of out) {
            const got = o[key];
            expect(got.length).toBe(length);
            // The float32 sum of N terms is within N · 2⁻²⁴ · Σ|x| of the float64 sum.
            let worst = 0;
            for (let i = 0; i < length; i++) {
              const bound = N * 2 ** -24 * (abs[i] as number) + 1e-30;
              worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)) / bound);
            }
            expect(worst).toBeLessThanOrEqual(1);
            // Each rank has its own network namespace: no Unix socket shortcut between them.
            expect(o.transports.length).toBeGreaterThan(0);
            expect(o.transports.every((t) => t === 'tcp')).toBe(true);
            expect(
              Buffer.from(got.buffer).equals(Buffer.from((out[0] as Result)[key].buffer)),
            ).toBe(true);
          }
        }
      } finally {
        net.cleanUp();
      }
    },
  );
});
