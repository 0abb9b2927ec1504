import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { openImageNet, syntheticJpeg, writeSyntheticImageNet } from '@thor-ts/data';
import { readSafetensors } from '@thor-ts/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { smallSgd } from './configs.js';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'thor-ts-cli-'));
  // 3 classes of 16 tiny images: 4 steps an epoch at batch 12.
  const synthetic = { classes: 3, trainPerClass: 16, valPerClass: 2, width: 12, height: 12 };
  await writeSyntheticImageNet(join(dir, 'data'), synthetic);
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

/** Runs a command to its end: its exit code, stdout and stderr apart. */
async function exec(file: string, args: string[]) {
  return promisify(execFile)(process.execPath, [file, ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

describe('thor-ts help and versions', () => {
  const worker = fileURLToPath(new URL('../dist/worker_main.js', import.meta.url));

  it('prints its usage for --help, -h and help (exit 0), and its version', async () => {
    for (const flag of ['--help', '-h', 'help']) {
      const r = await exec(cli, [flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage:\n {2}thor-ts config --preset/);
    }
    expect((await exec(cli, ['--version'])).stdout).toBe('thor-ts 0.0.0\n');
    const train = await exec(cli, ['train', '--help']);
    expect(train.code).toBe(0);
    expect(train.stdout).toMatch(/^ {2}thor-ts train \(--preset <name> \| --config <file.json>\)/);
    expect(train.stdout).not.toContain('thor-ts eval');
    const w = await exec(worker, ['--help']);
    expect(w.code).toBe(0);
    expect(w.stdout).toMatch(/^usage: thor-ts-worker <config.json> \[--fresh\]/);
    expect((await exec(worker, ['--version'])).stdout).toBe('thor-ts-worker 0.0.0\n');
  });

  it('runs as `npx thor-ts` from the repository root (npm links the workspace bins there)', async () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const { stdout } = await promisify(execFile)(
      'npm',
      ['exec', '--no', '--', 'thor-ts', '--version'],
      {
        cwd: root,
      },
    );
    expect(stdout).toBe('thor-ts 0.0.0\n');
  });

  it('takes --flag=value, refuses an unknown flag (exit 2) and suggests the nearest preset', async () => {
    const ok = await exec(cli, ['config', '--preset=imagenet-resnet50-sgd']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ optimizer: 'sgd', epochs: 90 });
    const bogus = await exec(cli, ['train', '--bogus']);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toContain("thor-ts train: Unknown option '--bogus'");
    const typo = await exec(cli, ['config', '--preset', 'imagenet-resnet50-thro']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain(
      "found 'imagenet-resnet50-thro' (did you mean 'imagenet-resnet50-thor'?)",
    );
  });
});

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
    expect(none.output).toContain(
      'thor-ts train: expected --nproc-per-node to be an integer ≥ 1, found 0',
    );
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

/** A small run on the synthetic data: a ResNet with one block, 3 classes, batch 12. */
async function smallRun(name: string, fields: Record<string, unknown> = {}): Promise<string> {
  const path = join(dir, `${name}.json`);
  const config = {
    ...smallSgd(),
    data: join(dir, 'data'),
    out: join(dir, name),
    model: { arch: 'resnetLight', classes: 3, layers: [1], widths: [4] },
    batchSize: 12,
    epochs: 2,
    ...fields,
  };
  await writeFile(path, JSON.stringify(config));
  return path;
}

describe('thor-ts train refuses', () => {
  it('nothing for an image of another size in a flip-only run: it is resized to the others’', async () => {
    const data = join(dir, 'odd-data');
    await writeSyntheticImageNet(data, {
      classes: 3,
      trainPerClass: 16,
      valPerClass: 2,
      width: 12,
      height: 12,
    });
    const set = await openImageNet(data);
    await writeFile(
      join(set.root, set.files[5]!),
      await syntheticJpeg(0, 3, 99, { width: 16, height: 16 }),
    );
    const path = await smallRun('odd', { data, augment: 'small', epochs: 1 });
    const { code, output } = await thorTs(['train', '--config', path, '--nproc', '2']);
    expect(code, output).toBe(0);
    expect(output).toMatch(/sgd epoch 1\/1: loss/);
  });

  it('a model whose classes are not the dataset’s (exit 2)', async () => {
    const path = await smallRun('classes', {
      model: { arch: 'resnetLight', classes: 10, layers: [1], widths: [4] },
    });
    const { code, output } = await thorTs(['train', '--config', path]);
    expect(code).toBe(2);
    expect(output).toMatch(
      /thor-ts train: config: field 'model.classes' is 10, but .*data has 3 class folders in its train split/,
    );
  });

  it('to resume a run with another shape unless --fresh (exit 2)', async () => {
    const path = await smallRun('reshaped');
    const out = join(dir, 'reshaped');
    await mkdir(out, { recursive: true });
    // What a run of 4 workers and 2 epochs leaves behind (the checkpoint's contents do not matter).
    await writeFile(join(out, 'last.ckpt'), '');
    const started = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    await writeFile(join(out, 'config.json'), JSON.stringify({ ...started, workers: 4 }));
    const changed = await thorTs(['train', '--config', path, '--nproc', '2', '--epochs', '3']);
    expect(changed.code).toBe(2);
    expect(changed.output).toContain(
      `thor-ts train: ${out} holds a run to resume, started with other settings (workers 4 → 2; epochs 2 → 3); pass --fresh to start over, or another --out`,
    );
  });

  it('to go on once the loss is not finite: steps skipped, then a stop, never a NaN file', async () => {
    const path = await smallRun('diverges', {
      lr: { schedule: 'constant', base: 1e12 },
      epochs: 3,
    });
    const { code, output } = await thorTs(['train', '--config', path, '--nproc', '2']);
    expect(code, output).toBe(1);
    expect(output).toContain(
      "the loss, the gradients or batch norm's statistics are not finite (NaN or infinite); the step is skipped, the model is unchanged (1 in a row)",
    );
    expect(output).toMatch(
      /thor-ts train: training diverged: the loss, the gradients or batch norm's statistics were not finite in 5 steps in a row \(steps \d+–\d+\)/,
    );
    // Whatever was written holds finite values only.
    const out = join(dir, 'diverges');
    for (const file of (await readdir(out)).filter((f) => /\.(ckpt|safetensors)$/.test(f))) {
      const { tensors } = await readSafetensors(join(out, file));
      for (const [name, t] of tensors) {
        expect(Array.from(t.data).every(Number.isFinite), `${file}: ${name}`).toBe(true);
      }
    }
  });
});

/** The pids of the worker processes whose command line names `configPath` (Linux's /proc). */
async function workersOf(configPath: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('worker_main.js') && cmdline.includes(configPath))
      pids.push(Number(entry));
  }
  return pids;
}

describe('thor-ts train under a fault', () => {
  it('restarts after a worker is killed (--max-restarts 1) and ends with an undisturbed run’s weights', async () => {
    const fields = { optimizer: 'thor', epochs: 4, checkpointEvery: 2 };
    const calm = await smallRun('calm', fields);
    expect((await thorTs(['train', '--config', calm, '--nproc', '2'])).code).toBe(0);

    const chaos = await smallRun('chaos', fields);
    const out = join(dir, 'chaos');
    const running = thorTs(['train', '--config', chaos, '--nproc', '2', '--max-restarts', '1']);
    let ended = false;
    void running.then(() => (ended = true));
    // The workers' pids are found while they start, so that the kill follows the first checkpoint
    // (step 2 of 16) within milliseconds: the steps of this tiny model are fast.
    const killed = await (async () => {
      let pids: number[] = [];
      while (!ended && pids.length < 2) {
        pids = await workersOf(join(out, 'config.json'));
        await sleep(10);
      }
      while (!ended && !existsSync(join(out, 'last.ckpt'))) await sleep(2);
      try {
        process.kill(pids[1]!, 'SIGKILL');
        return pids[1];
      } catch {
        return undefined; // it had already exited: the run ended first
      }
    })();
    const run = await running;
    expect(killed, `the run ended before a worker could be killed:\n${run.output}`).toBeDefined();
    expect(run.code, run.output).toBe(0);
    expect(run.output).toMatch(/\[launch\] rank \d was killed by SIGKILL \(exit code 137\)/);
    expect(run.output).toContain('[launch] restarting all 2 workers (restart 1 of 1)');
    expect(run.output).toMatch(/\[rank 0\] resuming from .*last\.ckpt/);
    const a = await readSafetensors(join(dir, 'calm', 'weights.safetensors'));
    const b = await readSafetensors(join(out, 'weights.safetensors'));
    expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
    for (const [k, t] of a.tensors) {
      const same = Buffer.from(b.tensors.get(k)!.data.buffer).equals(Buffer.from(t.data.buffer));
      expect(same, k).toBe(true);
    }
  });
});
