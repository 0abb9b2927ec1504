import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { values } from './with_ring.js';

const WORKER = fileURLToPath(new URL('./fixtures/netns_worker.mjs', import.meta.url));
const N = 4;
const tag = `tt${process.pid % 100_000}`;
const SWITCH = `${tag}sw`;
const ns = (r: number): string => `${tag}w${r}`;
const address = (r: number): string => `10.231.${process.pid % 250}.${r + 1}`;

const ip = (...args: string[]): { ok: boolean; err: string } => {
  const p = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: p.status === 0, err: (p.error?.message ?? p.stderr ?? '').trim() };
};
const must = (...args: string[]): void => {
  const { ok, err } = ip(...args);
  if (!ok) throw new Error(`ip ${args.join(' ')} failed: ${err}`);
};
const cleanUp = (): void => {
  for (const name of [SWITCH, ...Array.from({ length: N }, (_, r) => ns(r))]) {
    ip('netns', 'del', name);
  }
};

/** Why this machine cannot run the test, or undefined when it can. */
function unsupported(): string | undefined {
  if (process.platform !== 'linux')
    return `needs Linux network namespaces, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  if (!ip('-V').ok) return 'needs iproute2’s `ip` command, which is not installed';
  const probe = `${tag}probe`;
  const add = ip('netns', 'add', probe);
  if (!add.ok) return `cannot create a network namespace here: ${add.err}`;
  const bridge = ip('-n', probe, 'link', 'add', 'br0', 'type', 'bridge');
  ip('netns', 'del', probe);
  if (!bridge.ok) return `cannot create a bridge in a network namespace here: ${bridge.err}`;
  return undefined;
}
const reason = unsupported();

/** A switch namespace with a bridge, and one namespace per rank joined to it by a veth pair. */
function buildNetwork(): void {
  must('netns', 'add', SWITCH);
  must('-n', SWITCH, 'link', 'add', 'br0', 'type', 'bridge');
  must('-n', SWITCH, 'link', 'set', 'br0', 'up');
  for (let r = 0; r < N; r++) {
    must('netns', 'add', ns(r));
    must('-n', ns(r), 'link', 'set', 'lo', 'up');
    must(
      '-n',
      SWITCH,
      'link',
      'add',
      `p${r}`,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns(r),
    );
    must('-n', SWITCH, 'link', 'set', `p${r}`, 'master', 'br0', 'up');
    must('-n', ns(r), 'addr', 'add', `${address(r)}/24`, 'dev', 'eth0');
    must('-n', ns(r), 'link', 'set', 'eth0', 'up');
  }
}

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
        ns(r),
        process.execPath,
        WORKER,
        String(r),
        String(N),
        coordinator,
        address(r),
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
        return reject(new Error(`rank ${r} in namespace ${ns(r)} exited ${code}: ${err}`));
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
      cleanUp();
      try {
        buildNetwork();
        // Rank 0 hosts the coordinator on its own address; every other rank reaches it over the bridge.
        const out = await Promise.all(
          Array.from({ length: N }, (_, r) => run(r, `${address(0)}:29731`)),
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
        cleanUp();
      }
    },
  );
});
