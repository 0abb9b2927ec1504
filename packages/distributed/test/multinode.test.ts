import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { buildNetwork, netnsUnsupported } from './netns.js';

const BIN = fileURLToPath(new URL('../dist/bin/thor-ts-launch.js', import.meta.url));
const WORKER = fileURLToPath(new URL('./fixtures/env_worker.mjs', import.meta.url));
const reason = netnsUnsupported();

/** `thor-ts-launch args` in network namespace `ns` (on this machine when undefined). */
function launcher(
  ns: string | undefined,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; out: string; err: string }> {
  const command = [process.execPath, BIN, ...args];
  return new Promise((resolve) => {
    const p = spawn(
      ns === undefined ? command[0]! : 'ip',
      ns === undefined ? command.slice(1) : ['netns', 'exec', ns, ...command],
      {
        env: { ...process.env, ...env },
      },
    );
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe('thor-ts-launch on several machines', () => {
  it.skipIf(reason !== undefined)(
    `starts one job from two machines (network namespaces), each launching 2 workers with torchrun's flags${reason ? ` (skipped: ${reason})` : ''}`,
    async () => {
      const net = buildNetwork(2, 'mn', 232);
      try {
        const token = 'a'.repeat(64);
        const flags = (r: number): string[] => [
          '--nnodes=2',
          `--node-rank=${r}`,
          '--nproc-per-node=2',
          '--master-addr',
          net.address(0),
          '--master-port',
          '29733',
          '--',
          process.execPath,
          WORKER,
        ];
        // Machine 1 starts first: its workers wait for machine 0's coordinator.
        const second = launcher(net.ns(1), flags(1), { THOR_TS_JOB_TOKEN: token });
        const first = launcher(net.ns(0), flags(0), { THOR_TS_JOB_TOKEN: token });
        const [m0, m1] = await Promise.all([first, second]);
        expect(m0.code, m0.err).toBe(0);
        expect(m1.code, m1.err).toBe(0);
        // Ranks 0–3 contribute 1–4: every worker prints 10, machine 0 runs ranks 0 and 1.
        for (const r of [0, 1]) expect(m0.out).toContain(`[rank ${r}] sum 10 attempt 0`);
        for (const r of [2, 3]) expect(m1.out).toContain(`[rank ${r}] sum 10 attempt 0`);
        expect(m1.out).not.toContain('[rank 0]');
      } finally {
        net.cleanUp();
      }
    },
  );

  it('refuses flags that cannot make a job, naming them (exit 2)', async () => {
    const cmd = ['--', process.execPath, WORKER];
    const cases: [string[], NodeJS.ProcessEnv, string][] = [
      [
        ['--nnodes', '2', '--node-rank', '1', '--nproc-per-node', '1'],
        { THOR_TS_JOB_TOKEN: 'x' },
        'expected --master-addr',
      ],
      [
        ['--nnodes', '2', '--node-rank', '0', '--nproc-per-node', '1', '--master-addr', '10.0.0.1'],
        { THOR_TS_JOB_TOKEN: '' },
        'THOR_TS_JOB_TOKEN',
      ],
      [
        ['--nnodes', '2', '--node-rank', '2', '--nproc-per-node', '1', '--master-addr', '10.0.0.1'],
        { THOR_TS_JOB_TOKEN: 'x' },
        '--node-rank to be an integer in 0…1, found 2',
      ],
      [['--nproc', '2', '--nproc-per-node', '3'], {}, '--nproc-per-node 3 and --nproc 2 disagree'],
      [['--nproc_per_node', 'two'], {}, "--nproc-per-node expected an integer, found 'two'"],
      [
        [
          '--nnodes',
          '2',
          '--node-rank',
          '0',
          '--nproc-per-node',
          '1',
          '--master-addr',
          '10.0.0.1',
          '--max-restarts',
          '1',
        ],
        { THOR_TS_JOB_TOKEN: 'x' },
        'restarted by its scheduler',
      ],
      [
        ['--nproc-per-node', '1', '--master-port', '70000'],
        {},
        '--master-port to be an integer in 1…65535',
      ],
    ];
    for (const [args, env, message] of cases) {
      const { code, err } = await launcher(undefined, [...args, ...cmd], env);
      expect(code, args.join(' ')).toBe(2);
      expect(err, args.join(' ')).toContain(message);
    }
  });

  it("takes torchrun's underscore spellings and --flag=value", async () => {
    const { code, out } = await launcher(undefined, [
      '--nproc_per_node=2',
      '--',
      process.execPath,
      WORKER,
    ]);
    expect(code).toBe(0);
    for (const r of [0, 1]) expect(out).toContain(`[rank ${r}] sum 3 attempt 0`);
  });
});
