import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { initBackend } from '@thor-ts/backend';
import { writeSyntheticImageNet } from '@thor-ts/data';
import { readSafetensors, saveWeights } from '@thor-ts/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildModel, type TrainConfig } from '../dist/index.js';
import { smallThor } from './configs.js';
import { trainOnRing } from './ring.js';

let dir: string;
let data: string;

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  dir = await mkdtemp(join(tmpdir(), 'thor-ts-resume-'));
  data = join(dir, 'data');
  await writeSyntheticImageNet(data, {
    classes: 4,
    trainPerClass: 8,
    valPerClass: 3,
    width: 16,
    height: 16,
  });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A tiny THOR run: 32 images, batch 8 over the ring, 4 steps an epoch, a refresh every 3 steps. */
function tiny(out: string, overrides: Partial<TrainConfig> = {}): TrainConfig {
  const base = smallThor();
  return {
    ...base,
    data,
    out: join(dir, out),
    model: { arch: 'resnetLight', classes: 4, layers: [1, 1, 1], widths: [4, 8, 8] },
    epochs: 2,
    batchSize: 8,
    // Pinned here, whatever the preset's tuning holds: the tests below count on them.
    lr: { schedule: 'cosine', base: 0.2 },
    nesterov: false,
    thor: { ...base.thor, frequency: 3 },
    normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    ...overrides,
  };
}

async function parameters(out: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(join(out, 'weights.safetensors'));
  return new Map(
    [...tensors]
      .filter(([k]) => !/running_|num_batches/.test(k))
      .map(([k, t]) => [k, t.data as Float32Array]),
  );
}

/** Every tensor of a run's weights.safetensors, running statistics included. */
async function allTensors(out: string): Promise<Map<string, Float32Array | Float64Array>> {
  const { tensors } = await readSafetensors(join(out, 'weights.safetensors'));
  return new Map([...tensors].map(([k, t]) => [k, t.data]));
}

/** The weights `config`'s run starts from, as its weights.safetensors holds them (torchvision's layout). */
async function initialParameters(config: TrainConfig): Promise<Map<string, Float32Array>> {
  const model = buildModel(config);
  const out = join(dir, `init-${config.seed}`);
  await mkdir(out, { recursive: true });
  await saveWeights(model, join(out, 'weights.safetensors'));
  model.dispose();
  return parameters(out);
}

describe('train', () => {
  it('stops on its signal after the step under way, on every rank, and resumes exactly', async () => {
    const whole = tiny('whole');
    const [a] = await trainOnRing(2, whole);
    expect(a!.stopped).toBe(false);
    expect(a!.history.map((m) => m.step)).toEqual([4, 8]);
    expect(a!.history[1]!.refreshes).toBe(3); // steps 0, 3 and 6

    const split = tiny('split');
    // Rank 1 alone is told to stop after step 5 (epoch 2, step 1 of 4): both stop after step 6.
    const controller = new AbortController();
    const first = await trainOnRing(2, split, (rank) => ({
      ...(rank === 1 ? { signal: controller.signal } : {}),
      onStep: (step) => step === 5 && rank === 1 && controller.abort(),
    }));
    expect(first.map((r) => [r.stopped, r.step])).toEqual([
      [true, 6],
      [true, 6],
    ]);
    expect(first[0]!.history).toHaveLength(1);
    const second = await trainOnRing(2, split);
    expect(second[0]).toMatchObject({ stopped: false, step: 8 });
    expect(second[0]!.history.map((m) => m.epoch)).toEqual([1, 2]);
    expect(second[0]!.history[1]!.refreshes).toBe(3);

    // Same data, same updates, same momentum and inverses, and each rank's own batch-norm
    // statistics kept across the stop: the same weights and statistics, bit for bit.
    const [wa, wb] = [await allTensors(whole.out), await allTensors(split.out)];
    expect([...wb.keys()]).toEqual([...wa.keys()]);
    expect([...wa.keys()].filter((k) => k.includes('running_'))).not.toHaveLength(0);
    for (const [k, v] of wa)
      expect(Buffer.from(wb.get(k)!.buffer).equals(Buffer.from(v.buffer)), k).toBe(true);
    expect(second[0]!.history[1]!.top1).toBeCloseTo(a!.history[1]!.top1, 5);
  }, 600_000);

  it('scores the val split evalsPerEpoch times an epoch, and the training batches as trained', async () => {
    const once = tiny('once', { optimizer: 'sgd' });
    const often = tiny('often', { optimizer: 'sgd', evalsPerEpoch: 2 });
    const [a] = await trainOnRing(2, once);
    const [b] = await trainOnRing(2, often);
    // 4 steps an epoch: scored after steps 2 and 4 of each, the halves as fractional epochs.
    expect(b!.history.map((m) => [m.epoch, m.step])).toEqual([
      [0.5, 2],
      [1, 4],
      [1.5, 6],
      [2, 8],
    ]);
    const lines = (await readFile(join(often.out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { epoch: number }).epoch)).toEqual([0.5, 1, 1.5, 2]);
    // Scoring changes no weight: the same run, bit for bit, and the same score at each epoch's end.
    const [wa, wb] = [await parameters(once.out), await parameters(often.out)];
    for (const [k, v] of wa)
      expect(Buffer.from(wb.get(k)!.buffer).equals(Buffer.from(v.buffer)), k).toBe(true);
    expect(b!.history[3]!.top1).toBeCloseTo(a!.history[1]!.top1, 5);
    // Train top-1 is a share of the 8 images of each step, averaged over the epoch's steps so far:
    // a multiple of 1/16 after 2 steps and of 1/32 after 4, the same in both runs at the end.
    for (const m of b!.history) {
      const images = m.epoch % 1 === 0 ? 32 : 16;
      expect(m.trainTop1 * images).toBeCloseTo(Math.round(m.trainTop1 * images), 5);
      expect(m.trainTop1).toBeGreaterThanOrEqual(0);
      expect(m.trainTop1).toBeLessThanOrEqual(1);
    }
    expect(b!.history[3]!.trainTop1).toBeCloseTo(a!.history[1]!.trainTop1, 6);
  }, 600_000);

  it('keeps the evaluation due after the step it stops at, and resumes to the same scores', async () => {
    const whole = tiny('evals-whole', { optimizer: 'sgd', evalsPerEpoch: 2 });
    const [a] = await trainOnRing(2, whole);
    const split = tiny('evals-split', { optimizer: 'sgd', evalsPerEpoch: 2 });
    // Rank 0 is told to stop during step 5: both stop after step 6, after which (epoch 1.5) the
    // val split is due.
    const controller = new AbortController();
    const first = await trainOnRing(2, split, (rank) => ({
      ...(rank === 0 ? { signal: controller.signal } : {}),
      onStep: (step) => step === 5 && rank === 0 && controller.abort(),
    }));
    expect(first.map((r) => r.step)).toEqual([6, 6]);
    expect(first[0]!.history.map((m) => m.epoch)).toEqual([0.5, 1, 1.5]);
    const [b] = await trainOnRing(2, split);
    expect(b!.history.map((m) => m.epoch)).toEqual([0.5, 1, 1.5, 2]);
    const lines = (await readFile(join(split.out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { epoch: number }).epoch)).toEqual([0.5, 1, 1.5, 2]);
    expect(b!.history.map((m) => [m.top1, m.trainLoss])).toEqual(
      a!.history.map((m) => [m.top1, m.trainLoss]),
    );
    const [wa, wb] = [await allTensors(whole.out), await allTensors(split.out)];
    for (const [k, v] of wa)
      expect(Buffer.from(wb.get(k)!.buffer).equals(Buffer.from(v.buffer)), k).toBe(true);
  }, 600_000);

  it("resumes a run with THOR's running average of the factors exactly", async () => {
    const averaged = (out: string) =>
      tiny(out, { epochs: 1, thor: { ...tiny('').thor, factorDecay: 0.95, factorEvery: 1 } });
    const [whole] = await trainOnRing(2, averaged('avg-whole'));
    expect(whole!.history[0]!.refreshes).toBe(4); // factors on every one of the 4 steps
    const controller = new AbortController();
    await trainOnRing(2, averaged('avg-split'), (rank) => ({
      ...(rank === 0 ? { signal: controller.signal } : {}),
      onStep: (step) => step === 2 && rank === 0 && controller.abort(),
    }));
    await trainOnRing(2, averaged('avg-split'));
    const [wa, wb] = [
      await parameters(averaged('avg-whole').out),
      await parameters(averaged('avg-split').out),
    ];
    for (const [k, v] of wa)
      expect(Buffer.from(wb.get(k)!.buffer).equals(Buffer.from(v.buffer)), k).toBe(true);
    // And the average changes the run: not the weights of THOR without it.
    const [plain] = await trainOnRing(2, tiny('avg-none', { epochs: 1 }));
    expect(plain!.history[0]!.refreshes).toBe(2); // steps 0 and 3
    const wc = await parameters(tiny('avg-none').out);
    expect(
      Buffer.from(wc.get('conv1.weight')!.buffer).equals(
        Buffer.from(wa.get('conv1.weight')!.buffer),
      ),
    ).toBe(false);
  }, 600_000);

  it('accumulates micro-batches into one step', async () => {
    const [plain] = await trainOnRing(2, tiny('plain', { optimizer: 'sgd', epochs: 1 }));
    const [accumulated] = await trainOnRing(
      2,
      tiny('accumulated', { optimizer: 'sgd', epochs: 1, accumulate: 2 }),
    );
    // The same 4 steps of 8 images, each worker's 4 seen as 2 + 2 (batch norm then sees 2 at a time).
    expect(accumulated!.history[0]!.step).toBe(4);
    expect(plain!.history[0]!.step).toBe(4);
    // Averaged, not summed: the weights move about as far as without accumulation, and not the
    // same way (batch norm sees 2 images at a time). A sum would step as twice the learning rate
    // does, which moves them clearly farther (seen: 0.79× and 1.23× the plain run's distance).
    const [doubled] = await trainOnRing(
      2,
      tiny('doubled', {
        optimizer: 'sgd',
        epochs: 1,
        accumulate: 2,
        lr: { schedule: 'cosine', base: 0.4 },
      }),
    );
    expect(doubled!.history[0]!.step).toBe(4);
    const init = await initialParameters(tiny('init'));
    const moved = (w: Map<string, Float32Array>) => {
      let sq = 0;
      for (const [k, v] of init) v.forEach((x, i) => (sq += ((w.get(k)![i] as number) - x) ** 2));
      return Math.sqrt(sq);
    };
    const plainMoved = moved(await parameters(join(dir, 'plain')));
    const accumulatedMoved = moved(await parameters(join(dir, 'accumulated')));
    const doubledMoved = moved(await parameters(join(dir, 'doubled')));
    expect(accumulatedMoved / plainMoved).toBeGreaterThan(0.6);
    expect(accumulatedMoved / plainMoved).toBeLessThan(1.4);
    expect(accumulatedMoved / doubledMoved).toBeLessThan(0.8);
    expect(accumulatedMoved).not.toBe(plainMoved);
  });

  it("refreshes THOR from every micro-batch's curvature when it accumulates", async () => {
    // 2 ranks × 2 micro-batches of 2: the step's factors are the mean over 4 micro-batches.
    const [r0, r1] = await trainOnRing(2, tiny('thor-accumulated', { epochs: 1, accumulate: 2 }));
    for (const r of [r0!, r1!]) {
      expect(r.history[0]!.step).toBe(4);
      expect(r.history[0]!.refreshes).toBe(2); // steps 0 and 3
      expect(Number.isFinite(r.history[0]!.trainLoss)).toBe(true);
    }
    // Not the weights of the run without accumulation (batch norm sees 2 images at a time).
    const [plain] = await trainOnRing(2, tiny('thor-plain', { epochs: 1 }));
    expect(plain!.history[0]!.refreshes).toBe(2);
    const [wa, wp] = [
      await parameters(tiny('thor-accumulated').out),
      await parameters(tiny('thor-plain').out),
    ];
    expect(
      Buffer.from(wa.get('conv1.weight')!.buffer).equals(
        Buffer.from(wp.get('conv1.weight')!.buffer),
      ),
    ).toBe(false);
  });

  it('steps with Nesterov momentum and the warmed-up learning rate when the config asks', async () => {
    const sgd = { optimizer: 'sgd', epochs: 2 } as const;
    const [plain] = await trainOnRing(1, tiny('sgd-plain', sgd));
    const [nesterov] = await trainOnRing(1, tiny('sgd-nesterov', { ...sgd, nesterov: true }));
    const lr = { schedule: 'cosine', base: 0.2, warmupEpochs: 1 } as const;
    const [warm] = await trainOnRing(1, tiny('sgd-warm', { ...sgd, lr }));
    // 8 steps of cosine from 0.2: the first epoch's last step (3) takes 0.1·(1 + cos(3π/8)) =
    // 0.1382683 plainly, and 3/4 of step 4's 0.1·(1 + cos(π/2)) = 0.1, 0.075, warmed up.
    expect(plain!.history[0]!.lr).toBeCloseTo(0.1382683, 6);
    expect(warm!.history[0]!.lr).toBeCloseTo(0.075, 9);
    expect(nesterov!.history[0]!.lr).toBe(plain!.history[0]!.lr);
    const [a, b, c] = await Promise.all(
      ['sgd-plain', 'sgd-nesterov', 'sgd-warm'].map((d) => parameters(join(dir, d))),
    );
    const differ = (x: Map<string, Float32Array>, y: Map<string, Float32Array>) =>
      [...x].some(([k, v]) => !Buffer.from(v.buffer).equals(Buffer.from(y.get(k)!.buffer)));
    expect(differ(a!, b!)).toBe(true);
    expect(differ(a!, c!)).toBe(true);
  });

  it("bounds THOR's steps by the config's KL clip", async () => {
    // No weight decay, which THOR's clip does not bound (it is added after preconditioning).
    const one = { epochs: 1, weightDecay: 0, thor: { ...tiny('x').thor, frequency: 1 } } as const;
    const runs: Record<string, Partial<TrainConfig>> = {
      'kl-none': one,
      'kl-loose': { ...one, thor: { ...one.thor, klClip: 1e9 } },
      'kl-tight': { ...one, thor: { ...one.thor, klClip: 1e-9 } },
    };
    for (const [out, overrides] of Object.entries(runs)) {
      const [r] = await trainOnRing(1, tiny(out, overrides));
      expect(r!.history[0]!.step).toBe(4);
    }
    const init = await initialParameters(tiny('init'));
    const [none, loose, tight] = await Promise.all(
      Object.keys(runs).map((d) => parameters(join(dir, d))),
    );
    const moved = (w: Map<string, Float32Array>, k: string) =>
      Math.sqrt(w.get(k)!.reduce((a, x, i) => a + (x - init.get(k)![i]!) ** 2, 0));
    // A bound no step reaches changes nothing; a tiny one holds the preconditioned layers nearly
    // still, while the batch norms, not preconditioned, move as far as before.
    for (const [k, v] of none!)
      expect(Buffer.from(loose!.get(k)!.buffer).equals(Buffer.from(v.buffer)), k).toBe(true);
    const conv = [...none!.keys()].find((k) => /conv.*weight/.test(k))!;
    expect(moved(none!, conv)).toBeGreaterThan(0);
    expect(moved(tight!, conv)).toBeLessThan(moved(none!, conv) / 100);
    const bn = [...none!.keys()].find((k) => /bn.*weight/.test(k))!;
    expect(moved(tight!, bn)).toBeGreaterThan(moved(none!, bn) / 10);
  });

  it('starts from the weights init names, strict or not, and saves its own with their metadata', async () => {
    // Another seed's weights: what the run must start from instead of its own initialization.
    const file = join(dir, 'init-source.safetensors');
    const source = buildModel(tiny('init-source', { seed: 7 }));
    await saveWeights(source, file);
    source.dispose();
    const fileParameters = new Map(
      [...(await readSafetensors(file)).tensors]
        .filter(([k]) => !/running_|num_batches/.test(k))
        .map(([k, t]) => [k, t.data as Float32Array]),
    );
    // A learning rate of 0 and no weight decay: the parameters stay where they started.
    const still = { epochs: 1, lr: { schedule: 'constant' as const, base: 0 }, weightDecay: 0 };
    const config = tiny('init-run', { ...still, init: { weights: file } });
    const lines: string[] = [];
    await trainOnRing(2, config, (rank) => ({ log: (l) => rank === 0 && lines.push(l) }));
    expect(await parameters(config.out)).toEqual(fileParameters);
    expect(lines.some((l) => l.startsWith(`starting from ${file}: `))).toBe(true);
    const { metadata } = await readSafetensors(join(config.out, 'weights.safetensors'));
    expect(metadata['arch']).toBe('resnetLight');
    expect(JSON.parse(metadata['arch_options'] as string)).toMatchObject({ classes: 4 });
    expect(Number(metadata['batch_norm_eps'])).toBe(1e-5);
    expect(metadata['format']).toBe('pt');

    // A wider last stage than the file's: strict refuses, naming the tensors; not strict loads
    // the rest and says what it left.
    const other = { arch: 'resnetLight', classes: 4, layers: [1, 1, 1], widths: [4, 8, 16] };
    await expect(
      trainOnRing(2, tiny('init-strict', { ...still, model: other, init: { weights: file } })),
    ).rejects.toThrow(
      /does not match the model \(nothing was loaded\)[\s\S]*fc\.weight expected \[4,16\] found \[4,8\]/,
    );
    const loose = tiny('init-loose', {
      ...still,
      model: other,
      init: { weights: file, strict: false },
    });
    lines.length = 0;
    await trainOnRing(2, loose, (rank) => ({ log: (l) => rank === 0 && lines.push(l) }));
    const left = lines.find((l) => l.includes('not loaded (init.strict is false): '));
    expect(left).toMatch(/layer3\.0\.conv1\.weight.*fc\.weight/);
    const kept = await parameters(loose.out);
    expect(kept.get('conv1.weight')).toEqual(fileParameters.get('conv1.weight'));
  }, 300_000);

  it('refuses a batch that does not split over workers and micro-batches', async () => {
    await expect(trainOnRing(2, tiny('bad', { batchSize: 6, accumulate: 2 }))).rejects.toThrow(
      "field 'batchSize' (6) must divide by the 2 workers × 2 accumulated micro-batches",
    );
  });
});

describe('thor-ts train', () => {
  const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

  /** Runs the command; resolves with its exit code and output once it exits. */
  function start(args: string[], onOutput?: (text: string, child: ChildProcess) => void) {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (d: Buffer) => {
      output += d.toString();
      onOutput?.(output, child);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    return new Promise<{ code: number | null; output: string }>((done) =>
      child.on('exit', (code) => done({ code, output })),
    );
  }

  it('on SIGTERM checkpoints and exits 143, and the same command then resumes', async () => {
    const config = tiny('cli', { optimizer: 'sgd', epochs: 3 });
    const path = join(dir, 'cli.json');
    await writeFile(path, JSON.stringify(config));
    const args = ['train', '--config', path, '--nproc', '2'];
    let sent = false;
    const first = await start(args, (text, child) => {
      if (!sent && /step 1\/4/.test(text)) {
        sent = true;
        child.kill('SIGTERM');
      }
    });
    expect(first.output).toMatch(/\[launch\] SIGTERM: passing it on to the workers/);
    expect(first.output).toMatch(/\[rank 0\] stopped after step \d+; .*last\.ckpt holds it/);
    expect(first.code).toBe(143);
    const second = await start(args);
    expect(second.code, second.output).toBe(0);
    expect(second.output).toMatch(/\[rank 0\] resuming from .*last\.ckpt: epoch \d, step \d\/4/);
    const metrics = (await readFile(join(config.out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    expect(metrics.map((l) => (JSON.parse(l) as { epoch: number }).epoch)).toEqual([1, 2, 3]);
  }, 600_000);

  it('trains an architecture a module registers (--import), and names the flag when it is missing', async () => {
    const config = tiny('cli-import', { model: { arch: 'pooled-linear', classes: 4 }, epochs: 1 });
    const path = join(dir, 'cli-import.json');
    await writeFile(path, JSON.stringify(config));
    const fixture = fileURLToPath(new URL('fixtures/register_arch.mjs', import.meta.url));
    const missing = await start(['train', '--config', path]);
    expect(missing.code).toBe(2);
    expect(missing.output).toContain(
      `field 'model.arch' expected a registered architecture, found "pooled-linear"`,
    );
    const run = await start(['train', '--config', path, '--nproc', '2', '--import', fixture]);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain(
      '[rank 0] THOR preconditions 1 layer (fc); momentum SGD alone trains 1 parameter (fc.bias)',
    );
    const metrics = (await readFile(join(config.out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    expect(metrics).toHaveLength(1);
    const bad = await start(['train', '--config', path, '--import', './no/such/module.mjs']);
    expect(bad.code).toBe(2);
    expect(bad.output).toContain(
      "--import expected a module to load, found none at './no/such/module.mjs'",
    );
  }, 600_000);
});
