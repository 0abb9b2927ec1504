import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { initBackend } from '@thor-ts/backend';
import { writeSyntheticImageNet } from '@thor-ts/data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { validateConfig, type TrainConfig } from '../dist/index.js';
import { CsvLog } from '../src/csv_log.js';
import { METRIC_COLUMNS, STEP_COLUMNS } from '../src/run_logger.js';
import { smallThor } from './configs.js';
import { trainOnRing } from './ring.js';
import { readEvents, type ReadEvent } from './tfevents.js';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
let dir: string;
beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  dir = await mkdtemp(join(tmpdir(), 'thor-ts-logs-'));
  // 3 classes of 16 tiny images: 4 steps an epoch at batch 12.
  const synthetic = { classes: 3, trainPerClass: 16, valPerClass: 2, width: 12, height: 12 };
  await writeSyntheticImageNet(join(dir, 'data'), synthetic);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/**
 * A THOR run of 2 epochs of 4 steps, scored twice an epoch (after steps 2, 4, 6, 8), its
 * curvature refreshed every 3 steps (before steps 0, 3, 6: logged at steps 1, 4, 7).
 */
function tiny(name: string, fields: Partial<TrainConfig> = {}): TrainConfig {
  const base = smallThor();
  return {
    ...base,
    data: join(dir, 'data'),
    out: join(dir, name),
    model: { arch: 'resnetLight', classes: 3, layers: [1], widths: [4] },
    batchSize: 12,
    epochs: 2,
    evalsPerEpoch: 2,
    thor: { ...base.thor, frequency: 3 },
    ...fields,
  };
}

/** Runs `thor-ts …` to its end: exit code and output. */
function thorTs(args: string[]) {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise<{ code: number | null; output: string }>((done) =>
    child.on('exit', (code) => done({ code, output })),
  );
}

/** A CSV's header and rows (cells split at commas: these files hold numbers). */
async function readCsv(path: string): Promise<{ header: string; rows: string[][] }> {
  const [header, ...lines] = (await readFile(path, 'utf8')).trimEnd().split('\n');
  return { header: header!, rows: lines.map((l) => l.split(',')) };
}

/** The event files of a directory in TensorBoard's order (by name). */
function eventFiles(logdir: string): string[] {
  return readdirSync(logdir)
    .filter((f) => f.startsWith('events.out.tfevents.'))
    .sort()
    .map((f) => join(logdir, f));
}

/**
 * Each tag's [step, value] points as TensorBoard shows them: files in order, a SessionLog START
 * at step s dropping the points before it at steps ≥ s (its purge of orphaned data).
 */
function scalarsOf(events: ReadEvent[]): Map<string, [number, number][]> {
  const tags = new Map<string, [number, number][]>();
  for (const e of events) {
    if (e.sessionStatus === 1) {
      for (const [tag, points] of tags)
        tags.set(
          tag,
          points.filter(([step]) => step < e.step),
        );
    }
    for (const [tag, value] of e.scalars)
      tags.set(tag, [...(tags.get(tag) ?? []), [e.step, value]]);
  }
  return tags;
}

const steps = (points: [number, number][] | undefined) => (points ?? []).map(([s]) => s);

describe('thor-ts train --tensorboard', () => {
  const logdir = () => join(dir, 'tb');

  it('writes an event file of each step and evaluation, and steps.csv and metrics.csv', async () => {
    const config = tiny('cli');
    const path = join(dir, 'cli.json');
    await writeFile(path, JSON.stringify(config));
    const run = await thorTs([
      'train',
      '--config',
      path,
      '--nproc',
      '2',
      '--tensorboard',
      logdir(),
    ]);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain(`TensorBoard events: ${logdir()}/events.out.tfevents.`);

    const files = eventFiles(logdir());
    expect(files).toHaveLength(1);
    const events = readEvents(files[0]!);
    expect(events[0]!.fileVersion).toBe('brain.Event:2');
    const tags = scalarsOf(events);
    const all = [1, 2, 3, 4, 5, 6, 7, 8];
    expect(steps(tags.get('train/loss'))).toEqual(all);
    expect(steps(tags.get('train/lr'))).toEqual(all);
    expect(steps(tags.get('train/damping'))).toEqual(all);
    expect(steps(tags.get('train/img_per_s'))).toEqual(all);
    expect(steps(tags.get('thor/refresh_ms'))).toEqual([1, 4, 7]);
    for (const tag of ['val/top1', 'val/top5', 'train/top1', 'train/loss_epoch', 'metrics/lr']) {
      expect(steps(tags.get(tag)), tag).toEqual([2, 4, 6, 8]);
    }
    expect(tags.has('metrics/step')).toBe(false);

    // metrics.jsonl as it was, one line per evaluation; metrics.csv the same fields and values.
    const lines = (await readFile(join(config.out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    const jsonl = lines.map((l) => JSON.parse(l) as Record<string, number | string>);
    expect(Object.keys(jsonl[0]!)).toEqual([...METRIC_COLUMNS]);
    const metrics = await readCsv(join(config.out, 'metrics.csv'));
    expect(metrics.header).toBe(METRIC_COLUMNS.join(','));
    expect(metrics.rows).toEqual(jsonl.map((m) => METRIC_COLUMNS.map((k) => String(m[k]))));
    // TensorBoard's values are float32s of the same numbers.
    expect(tags.get('val/top1')!.map(([, v]) => v)).toEqual(
      jsonl.map((m) => Math.fround(m.top1 as number)),
    );

    // steps.csv: a row per step; the refresh time on refresh steps only; damping with THOR.
    const stepsCsv = await readCsv(join(config.out, 'steps.csv'));
    expect(stepsCsv.header).toBe(
      'step,epoch,loss,lr,damping,img_per_s,refresh_ms,data_ms,compute_ms,allreduce_ms,update_ms',
    );
    expect(stepsCsv.rows.map((r) => [r[0], r[1]])).toEqual(
      all.map((s) => [String(s), String(s <= 4 ? 1 : 2)]),
    );
    expect(stepsCsv.rows.filter((r) => r[6] !== '').map((r) => Number(r[0]))).toEqual([1, 4, 7]);
    for (const r of stepsCsv.rows) {
      expect(
        r
          .slice(2, 6)
          .map(Number)
          .every((x) => Number.isFinite(x) && x > 0),
        r.join(),
      ).toBe(true);
    }
    // Where each step went: every phase timed, the passes always, within the step's own time.
    for (const r of stepsCsv.rows) {
      const [data, compute, allReduce, update] = r.slice(7, 11).map(Number) as number[];
      expect(
        [data, compute, allReduce, update].every((x) => Number.isFinite(x) && x! >= 0),
        r.join(),
      ).toBe(true);
      expect(compute, r.join()).toBeGreaterThan(0);
      const stepMs = (config.batchSize / Number(r[5])) * 1000;
      expect(data! + compute! + allReduce! + update!, r.join()).toBeLessThanOrEqual(stepMs * 1.001);
    }
    expect(steps(tags.get('time/compute_ms'))).toEqual(all);
    expect(tags.get('train/loss')!.map(([, v]) => v)).toEqual(
      stepsCsv.rows.map((r) => Math.fround(Number(r[2]))),
    );
  }, 600_000);

  // TensorBoard's own reader, when Python has it: it checks each record's CRCs too.
  const python = '/usr/bin/python3';
  const hasTensorboard = (() => {
    try {
      execFileSync(python, ['-c', 'import tensorboard'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  it.skipIf(!hasTensorboard)('reads the same with TensorBoard’s EventAccumulator', () => {
    const script = [
      'import json, sys',
      'from tensorboard.backend.event_processing.event_accumulator import EventAccumulator',
      "acc = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0})",
      'acc.Reload()',
      "print(json.dumps({t: [e.step for e in acc.Scalars(t)] for t in acc.Tags()['scalars']}))",
    ].join('\n');
    const tags = JSON.parse(execFileSync(python, ['-c', script, logdir()], { encoding: 'utf8' }));
    expect(tags['train/loss']).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(tags['val/top1']).toEqual([2, 4, 6, 8]);
  });
});

describe('a resumed run’s logs', () => {
  it('hold each step and evaluation once, under one header, and TensorBoard purges the rest', async () => {
    const config = tiny('resumed', { optimizer: 'sgd', tensorboard: join(dir, 'tb-resumed') });
    // Rank 1 is told to stop after step 4: both ranks stop after step 5 (the flag goes with the
    // next step's all-reduce), between evaluations, with a checkpoint.
    const controller = new AbortController();
    const first = await trainOnRing(2, config, (rank) => ({
      ...(rank === 1 ? { signal: controller.signal } : {}),
      onStep: (step) => step === 4 && rank === 1 && controller.abort(),
    }));
    const stopped = first[0]!.step;
    expect([first[0]!.stopped, stopped]).toEqual([true, 5]);
    // A step the stopped run logged after its checkpoint (as a killed run may have): dropped.
    await appendFile(join(config.out, 'steps.csv'), `${stopped + 1},2,99,99,,99,\n`);
    const second = await trainOnRing(2, config);
    expect(second[0]).toMatchObject({ stopped: false, step: 8 });

    const stepsCsv = await readCsv(join(config.out, 'steps.csv'));
    expect(stepsCsv.header).toBe(STEP_COLUMNS.join(','));
    expect(stepsCsv.rows.map((r) => Number(r[0]))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(stepsCsv.rows.some((r) => r[2] === '99')).toBe(false);
    // SGD: no damping, no refresh.
    expect(stepsCsv.rows.every((r) => r[4] === '' && r[6] === '')).toBe(true);
    const metrics = await readCsv(join(config.out, 'metrics.csv'));
    expect(metrics.header).toBe(METRIC_COLUMNS.join(','));
    expect(metrics.rows.map((r) => Number(r[2]))).toEqual([2, 4, 6, 8]);

    const files = eventFiles(config.tensorboard!);
    expect(files).toHaveLength(2);
    const resumed = readEvents(files[1]!);
    expect(resumed[1]).toMatchObject({ step: stopped + 1, sessionStatus: 1 });
    const tags = scalarsOf(files.flatMap(readEvents));
    expect(steps(tags.get('train/loss'))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(steps(tags.get('val/top1'))).toEqual([2, 4, 6, 8]);
    expect(tags.has('train/damping')).toBe(false);
  }, 600_000);
});

describe('the tensorboard field', () => {
  it('is a directory or absent, and a near miss names it', () => {
    const ok = tiny('config');
    expect(validateConfig({ ...ok, tensorboard: 'runs/tb' }).tensorboard).toBe('runs/tb');
    expect(() => validateConfig({ ...ok, tensorboard: '' })).toThrow(
      `config: field 'tensorboard' expected a directory (a non-empty string), or absent, found ""`,
    );
    expect(() => validateConfig({ ...ok, tensorbord: 'runs/tb' } as never)).toThrow(
      "config: field 'tensorbord' is not a config field (did you mean 'tensorboard'?)",
    );
  });
});

describe('CsvLog', () => {
  it('quotes what needs it, checks row lengths, and keeps rows of the same or fewer columns', async () => {
    const path = join(dir, 'log.csv');
    const log = new CsvLog(path, ['a', 'b', 'c']);
    log.row([1, 'x,"y"', undefined]);
    log.row([NaN, 0.1, 'z']);
    expect(() => log.row([1])).toThrow(`${path}: expected a row of 3 cells (a, b, c), found 1`);
    log.close();
    expect(await readFile(path, 'utf8')).toBe('a,b,c\n1,"x,""y""",\nNaN,0.1,z\n');
    expect(CsvLog.kept(path, ['a', 'b', 'c'], ([a]) => a === 'NaN')).toEqual(['NaN,0.1,z']);
    expect(CsvLog.kept(path, ['a', 'b'], () => true)).toEqual([]);
    expect(CsvLog.kept(join(dir, 'none.csv'), ['a'], () => true)).toEqual([]);
    // A file from before columns were added: its cells go under their names, the new ones empty.
    const older = new CsvLog(join(dir, 'older.csv'), ['a', 'c']);
    older.row([1, 2]);
    older.row([3, 4]);
    older.close();
    expect(CsvLog.kept(older.path, ['a', 'b', 'c', 'd'], ([a]) => a === '3')).toEqual(['3,,4,']);
    expect(CsvLog.kept(older.path, ['a', 'b'], () => true)).toEqual([]);
  });
});
