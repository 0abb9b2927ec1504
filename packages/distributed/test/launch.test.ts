import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../dist/bin/thor-ts-launch.js', import.meta.url));
const WORKER = fileURLToPath(new URL('./fixtures/env_worker.mjs', import.meta.url));

function run(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

describe('thor-ts-launch', () => {
  it('runs N workers that join from the environment, prefixing output with the rank', async () => {
    // Ranks 0, 1, 2 contribute 1, 2, 3: each prints 6.
    const { code, out } = await run(['--nproc', '3', '--', process.execPath, WORKER]);
    expect(code).toBe(0);
    for (const r of [0, 1, 2]) expect(out).toContain(`[rank ${r}] sum 6 attempt 0`);
  });

  it('tags every redraw of a line that a worker redraws in place', async () => {
    const script = "process.stderr.write('step 1\\rstep 2\\rstep 3\\n'); console.log('done')";
    const { code, out, err } = await run(['--nproc', '1', '--', process.execPath, '-e', script]);
    expect(code).toBe(0);
    expect(err).toContain('[rank 0] step 1\r[rank 0] step 2\r[rank 0] step 3\n');
    expect(out).toBe('[rank 0] done\n');
  });

  it('stops every worker when one fails, and restarts them up to --max-restarts', async () => {
    const once = await run(['--nproc', '3', '--', process.execPath, WORKER], { FAIL_RANK: '1' });
    expect(once.code).toBe(3);
    expect(once.err).toContain(
      '[launch] rank 1 exited with 3 (its last line: failing on purpose); stopping the other workers',
    );
    const again = await run(
      ['--nproc', '3', '--max-restarts', '1', '--', process.execPath, WORKER],
      {
        FAIL_RANK: '1',
      },
    );
    expect(again.code).toBe(0);
    expect(again.err).toMatch(/restarting all 3 workers \(restart 1 of 1\)/);
    expect(again.out).toContain('[rank 1] sum 6 attempt 1');
  });

  it('names the signal that killed a worker, and exits 128 + its number', async () => {
    const script = "console.error('about to go'); process.kill(process.pid, 'SIGKILL')";
    const { code, err } = await run(['--nproc', '1', '--', process.execPath, '-e', script]);
    expect(code).toBe(137);
    expect(err).toContain(
      '[launch] rank 0 was killed by SIGKILL (exit code 137) (its last line: about to go); stopping the other workers',
    );
  });

  it('explains its usage: on --help (exit 0), and when the arguments are wrong (exit 2)', async () => {
    const { code, err } = await run(['--nproc', '2']);
    expect(code).toBe(2);
    expect(err).toContain('thor-ts-launch: expected -- <command>');
    expect(err).toMatch(/usage: thor-ts-launch --nproc-per-node <n> \[--nnodes <m>/);
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^usage: thor-ts-launch --nproc-per-node <n>/);
    expect((await run(['--version'])).out).toBe('thor-ts-launch 0.0.0\n');
    const none = await run(['--', process.execPath, '-e', '']);
    expect(none.code).toBe(2);
    expect(none.err).toContain(
      'thor-ts-launch: expected --nproc-per-node <n>, the number of workers to start on this machine',
    );
    const bad = await run(['--nproc', '0', '--', process.execPath, '-e', '']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain(
      'thor-ts-launch: expected --nproc-per-node to be an integer ≥ 1, found 0',
    );
  });

  it('takes --flag=value', async () => {
    const { code, out } = await run(['--nproc=2', '--', process.execPath, WORKER]);
    expect(code).toBe(0);
    expect(out).toContain('[rank 1] sum 3 attempt 0');
  });
});
