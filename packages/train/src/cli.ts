#!/usr/bin/env node
// thor-ts config | train | eval | data | launch — see USAGE.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';

import {
  launch,
  LAUNCH_FLAGS,
  LAUNCH_USAGE,
  launchOptionsFromFlags,
  LaunchOptionsError,
} from '@thor-ts/distributed';
import { nearestName } from '@thor-ts/model';

import { presets, validateConfig, type TrainConfig } from './config.js';
import { ConfigError } from './config_error.js';

const USAGE = `Usage:
  thor-ts config --preset <name> [--data <dir>] [--out <dir>]   (prints the config JSON)
  thor-ts train (--preset <name> | --config <file.json>) [--data <dir>] [--out <dir>]
                [--optimizer thor|sgd] [--epochs <n>] [--batch-size <n>] [--accumulate <k>]
                [--lr <base>] [--fresh] [--tensorboard <dir>] [--import <module>]…
                [${LAUNCH_USAGE}]
      (continues from <out>/last.ckpt when there is one, unless --fresh; --nproc is an alias of
      --nproc-per-node; a job on several machines runs the same command on each, with its own
      --node-rank and the same secret in THOR_TS_JOB_TOKEN)
      (writes metrics.jsonl, metrics.csv and steps.csv in <out>, and with --tensorboard a
      TensorBoard event file in <dir>)
  thor-ts eval (--preset <name> | --config <file.json>) --weights <file> [--data <dir>]
               [--split val] [--nproc-per-node <n>] [--import <module>]…
      (prints {"top1", "top5", "images"} as JSON)
  --import loads a module (e.g. one that calls registerArch) here and in every worker first.
  thor-ts data prepare fashion-mnist --out <dir> [--limit <n>]
  thor-ts launch ${LAUNCH_USAGE} -- <command…>
Presets: ${Object.keys(presets).join(', ')}.`;

const here = dirname(fileURLToPath(import.meta.url));
const [command, ...rest] = process.argv.slice(2);
const { version } = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
) as { version: string };

// thor-ts --help | -h | help, --version | -V; `thor-ts <command> --help` for one command.
if (command === '--help' || command === '-h' || command === 'help') {
  console.log(USAGE);
  process.exit(0);
}
if (command === '--version' || command === '-V' || command === 'version') {
  console.log(`thor-ts ${version}`);
  process.exit(0);
}
if (
  (command === 'config' || command === 'train' || command === 'eval') &&
  (rest.includes('--help') || rest.includes('-h'))
) {
  console.log(
    USAGE.split('\n')
      .filter((l, i, all) => l.startsWith(`  thor-ts ${command} `) || continues(all, i, command))
      .join('\n'),
  );
  process.exit(0);
}

/** Whether line `i` of the usage continues the entry of `cmd` (an indented line after it). */
function continues(lines: string[], i: number, cmd: string): boolean {
  for (let j = i; j >= 0; j--) {
    const l = lines[j] as string;
    if (/^ {2}thor-ts /.test(l)) return l.startsWith(`  thor-ts ${cmd} `) && j !== i;
    if (!/^ {4}/.test(l)) return false;
  }
  return false;
}

/** `parseArgs` over this command's arguments; a flag it does not know is a usage error. */
function flags<T extends ParseArgsConfig['options']>(options: T) {
  try {
    return parseArgs({ args: rest, options, strict: true });
  } catch (e) {
    fail(`thor-ts ${command}: ${(e as Error).message}`);
  }
}

// An error ends the command with its message, not a stack trace: exit 2 for a bad config, flag
// or file (usage), 1 for a failure while running.
process.on('uncaughtException', (e) => {
  console.error(`thor-ts ${command ?? ''}: ${e.message}`);
  process.exit(e instanceof ConfigError || e instanceof LaunchOptionsError ? 2 : 1);
});

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

/** An unknown or missing preset: the nearest name, and all of them. */
function unknownPreset(cmd: string, name: string | undefined): string {
  const names = Object.keys(presets);
  const near = name === undefined ? undefined : nearestName(name, names);
  return `thor-ts ${cmd}: expected --preset with one of ${names.join(', ')}, found ${name === undefined ? 'none' : `'${name}'`}${near === undefined ? '' : ` (did you mean '${near}'?)`}`;
}

/** A number from a flag, or the usage and exit code 2. */
function number(flag: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n))
    fail(`thor-ts: --${flag} expected a number, found '${text}'`);
  return n;
}

/** A whole number ≥ `min` from a flag, or the usage and exit code 2. */
function count(flag: string, text: string, min = 1): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min)
    fail(`thor-ts: --${flag} expected an integer ≥ ${min}, found '${text}'`);
  return n;
}

/** The config of `--config <file>` or `--preset <name>`, with `--data` applied and checked. */
async function loadConfig(
  cmd: string,
  values: { preset?: string | undefined; config?: string | undefined; data?: string | undefined },
): Promise<TrainConfig> {
  let config: TrainConfig;
  if (values.config !== undefined) {
    const text = await readFile(values.config, 'utf8');
    try {
      config = JSON.parse(text) as TrainConfig;
    } catch (e) {
      fail(
        `thor-ts ${cmd}: ${values.config}: expected a JSON config, found: ${(e as Error).message}`,
      );
    }
  } else if (values.preset !== undefined) {
    const p = presets[values.preset];
    if (p === undefined) fail(unknownPreset(cmd, values.preset));
    config = structuredClone(p);
  } else {
    fail(`thor-ts ${cmd}: expected --preset or --config`);
  }
  if (values.data !== undefined) config.data = resolve(values.data);
  if (config.data === '')
    fail(`thor-ts ${cmd}: expected --data <dataset root with train/ and val/>`);
  return config;
}

/**
 * Loads each `--import` module here (so the config can name what it registers) and returns the
 * flags that load it in every worker first (node's own --import).
 */
async function importModules(cmd: string, modules: string[] | undefined): Promise<string[]> {
  const flags: string[] = [];
  for (const m of modules ?? []) {
    // A path (relative to here) when there is such a file, else a package name.
    const url = existsSync(resolve(m)) ? pathToFileURL(resolve(m)).href : m;
    try {
      await import(url);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code !== 'ERR_MODULE_NOT_FOUND' && err.code !== 'ERR_UNSUPPORTED_DIR_IMPORT') throw e;
      fail(
        `thor-ts ${cmd}: --import expected a module to load, found none at '${m}' (${err.message})`,
      );
    }
    flags.push('--import', url);
  }
  return flags;
}

/**
 * A run in `config.out` (its last.ckpt) resumes only with the shape it was started with: the same
 * workers, epochs, batch, learning rate, optimizer, model and seed. Anything else is a usage error
 * that says what changed (--fresh starts over).
 */
async function refuseChangedResume(config: TrainConfig, nproc: number): Promise<void> {
  const previous = join(config.out, 'config.json');
  if (!existsSync(join(config.out, 'last.ckpt')) || !existsSync(previous)) return;
  const was = JSON.parse(await readFile(previous, 'utf8')) as TrainConfig & { workers?: number };
  const now = { ...config, workers: nproc } as Record<string, unknown>;
  const fields = [
    'workers',
    'epochs',
    'batchSize',
    'accumulate',
    'optimizer',
    'lr',
    'model',
    'seed',
  ];
  const changed = fields
    .filter((f) => was[f as keyof typeof was] !== undefined)
    .filter((f) => JSON.stringify(was[f as keyof typeof was]) !== JSON.stringify(now[f]))
    .map((f) => `${f} ${JSON.stringify(was[f as keyof typeof was])} → ${JSON.stringify(now[f])}`);
  if (changed.length > 0) {
    fail(
      `thor-ts train: ${config.out} holds a run to resume, started with other settings (${changed.join('; ')}); pass --fresh to start over, or another --out`,
    );
  }
}

/** Runs another package's command in a child process, passing on the signals it gets. */
async function delegate(entry: string, args: string[]): Promise<void> {
  const child = spawn(process.execPath, [entry, ...args], { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, forward);
  process.exitCode = await new Promise<number>((done) =>
    child.on('exit', (code, signal) =>
      done(code ?? (signal === null ? 1 : 128 + (constants.signals[signal] ?? 0))),
    ),
  );
  for (const s of signals) process.off(s, forward);
}

if (command === 'config') {
  const { values } = flags({
    preset: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
  });
  const p = values.preset === undefined ? undefined : presets[values.preset];
  if (p === undefined) fail(unknownPreset('config', values.preset));
  const config: TrainConfig = {
    ...structuredClone(p),
    ...(values.data ? { data: values.data } : {}),
    ...(values.out ? { out: values.out } : {}),
  };
  if (config.data !== '') validateConfig(config, `preset ${values.preset}`);
  console.log(JSON.stringify(config, null, 2));
} else if (command === 'train') {
  const { values } = flags({
    preset: { type: 'string' },
    config: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    ...LAUNCH_FLAGS,
    optimizer: { type: 'string' },
    epochs: { type: 'string' },
    'batch-size': { type: 'string' },
    accumulate: { type: 'string' },
    lr: { type: 'string' },
    fresh: { type: 'boolean', default: false },
    tensorboard: { type: 'string' },
    import: { type: 'string', multiple: true },
  });
  const imports = await importModules('train', values.import);
  const config = await loadConfig('train', values);
  if (values.out !== undefined) config.out = resolve(values.out);
  if (values.optimizer !== undefined)
    config.optimizer = values.optimizer as TrainConfig['optimizer'];
  if (values.epochs !== undefined) config.epochs = number('epochs', values.epochs);
  if (values['batch-size'] !== undefined)
    config.batchSize = number('batch-size', values['batch-size']);
  if (values.accumulate !== undefined) config.accumulate = number('accumulate', values.accumulate);
  if (values.lr !== undefined) config.lr = { ...config.lr, base: number('lr', values.lr) };
  if (values.tensorboard !== undefined) config.tensorboard = resolve(values.tensorboard);
  validateConfig(config, values.config ?? `preset ${values.preset}`);
  if (config.init !== undefined && !existsSync(config.init.weights)) {
    fail(`thor-ts train: field 'init.weights' names ${config.init.weights}, which does not exist`);
  }
  // Checked before anything is written.
  let where;
  try {
    where = launchOptionsFromFlags(values, 'thor-ts train', { nproc: 1 });
  } catch (e) {
    fail((e as Error).message);
  }
  const workers = where.nproc * (where.nnodes ?? 1);
  const shares = workers * (config.accumulate ?? 1);
  if (config.batchSize % shares !== 0) {
    fail(
      `thor-ts train: expected a batch size that divides by the ${workers} workers × ${config.accumulate ?? 1} accumulated micro-batches, found ${config.batchSize}`,
    );
  }
  if (!values.fresh) await refuseChangedResume(config, workers);
  await mkdir(config.out, { recursive: true });
  const configPath = join(config.out, 'config.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  process.exitCode = await launch({
    ...where,
    command: process.execPath,
    // The runtime's own flags (heap size, experimental features) reach the workers too.
    args: [
      ...process.execArgv,
      ...imports,
      join(here, 'worker_main.js'),
      configPath,
      ...(values.fresh ? ['--fresh'] : []),
    ],
  });
} else if (command === 'eval') {
  const { values } = flags({
    preset: { type: 'string' },
    config: { type: 'string' },
    weights: { type: 'string' },
    data: { type: 'string' },
    split: { type: 'string', default: 'val' },
    'nproc-per-node': { type: 'string' },
    nproc: { type: 'string' },
    import: { type: 'string', multiple: true },
  });
  const imports = await importModules('eval', values.import);
  const config = validateConfig(
    await loadConfig('eval', values),
    values.config ?? `preset ${values.preset}`,
  );
  if (values.weights === undefined) fail('thor-ts eval: expected --weights <file>');
  if (values.split !== 'train' && values.split !== 'val')
    fail(`thor-ts eval: --split expected 'train' or 'val', found '${values.split}'`);
  const evalProcs = count('nproc-per-node', values['nproc-per-node'] ?? values.nproc ?? '1');
  const dir = await mkdtemp(join(tmpdir(), 'thor-ts-eval-'));
  try {
    const configPath = join(dir, 'config.json');
    const resultPath = join(dir, 'result.json');
    await writeFile(configPath, JSON.stringify(config, null, 2));
    const args = [
      ...process.execArgv,
      ...imports,
      join(here, 'worker_main.js'),
      configPath,
      '--eval',
      resolve(values.weights),
    ];
    args.push('--split', values.split, '--eval-out', resultPath);
    process.exitCode = await launch({
      nproc: evalProcs,
      command: process.execPath,
      args,
      out: () => undefined,
    });
    if (process.exitCode === 0) process.stdout.write(await readFile(resultPath, 'utf8'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
} else if (command === 'data') {
  await delegate(fileURLToPath(import.meta.resolve('@thor-ts/data/cli')), rest);
} else if (command === 'launch') {
  await delegate(fileURLToPath(import.meta.resolve('@thor-ts/distributed/launch-cli')), rest);
} else {
  fail(
    command === undefined ? 'thor-ts: expected a command' : `thor-ts: unknown command '${command}'`,
  );
}
