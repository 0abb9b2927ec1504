import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { smallSgd } from './configs.js';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'thor-ts-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs `thor-ts …`; resolves with its exit code and output once it exits. */
function thorTs(args: string[], onOutput?: (text: string, pid: number) => void) {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (d: Buffer) => {
    output += d.toString();
    onOutput?.(output, child.pid!);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  return new Promise<{ code: number | null; output: string }>((done) =>
    child.on('exit', (code) => done({ code, output })),
  );
}

/** A config file for a dataset that is not there. */
async function configFile(name: string, out = join(dir, name)): Promise<string> {
  const path = join(dir, `${name}.json`);
  await writeFile(path, JSON.stringify({ ...smallSgd(), data: join(dir, 'no-such-data'), out }));
  return path;
}

describe('thor-ts errors', () => {
  it('a worker that fails says so in one line, exit 1, and the launcher names the first one', async () => {
    const { code, output } = await thorTs([
      'train',
      '--config',
      await configFile('missing'),
      '--nproc',
      '2',
    ]);
    expect(code).toBe(1);
    const lines = output.split('\n').filter((l) => l.includes('thor-ts train:'));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(output).toMatch(
      /\[rank \d\] thor-ts train: Expected an ImageNet directory \(holding train\/ and val\/\) at .*no-such-data, found nothing\./,
    );
    expect(output).toMatch(
      /\[launch\] rank \d exited with 1 \(its last line: thor-ts train: Expected an ImageNet directory/,
    );
    // No stack traces, no runtime banner.
    expect(output).not.toMatch(/^\[rank \d\]\s+at /m);
    expect(output).not.toContain('Node.js v');
  });

  it('refuses a batch the workers cannot share, and --nproc 0, before writing anything (exit 2)', async () => {
    const out = join(dir, 'refused');
    const path = await configFile('refused', out);
    const odd = await thorTs(['train', '--config', path, '--nproc', '4', '--batch-size', '130']);
    expect(odd.code).toBe(2);
    expect(odd.output).toContain(
      'thor-ts train: expected a batch size that divides by the 4 workers × 1 accumulated micro-batches, found 130',
    );
    const none = await thorTs(['train', '--config', path, '--nproc', '0']);
    expect(none.code).toBe(2);
    expect(none.output).toContain("thor-ts: --nproc expected an integer ≥ 1, found '0'");
    expect(existsSync(join(out, 'config.json'))).toBe(false);
  });

  it('refuses an unknown split for eval (exit 2)', async () => {
    const path = await configFile('split');
    const { code, output } = await thorTs([
      'eval',
      '--config',
      path,
      '--weights',
      path,
      '--split',
      'nope',
    ]);
    expect(code).toBe(2);
    expect(output).toContain("thor-ts eval: --split expected 'train' or 'val', found 'nope'");
  });

  it('passes SIGTERM on through `thor-ts launch`, so no worker is left behind', async () => {
    const worker = "console.log('pid', process.pid); setInterval(() => {}, 1000)";
    let workerPid: number | undefined;
    const { code } = await thorTs(
      ['launch', '--nproc', '1', '--', process.execPath, '-e', worker],
      (text, pid) => {
        const m = /\[rank 0\] pid (\d+)/.exec(text);
        if (m && workerPid === undefined) {
          workerPid = Number(m[1]);
          process.kill(pid, 'SIGTERM');
        }
      },
    );
    expect(code).toBe(143);
    expect(workerPid).toBeDefined();
    // The worker is gone: signalling it fails with ESRCH.
    expect(() => process.kill(workerPid!, 0)).toThrow(/ESRCH/);
  });
});
