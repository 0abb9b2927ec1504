#!/usr/bin/env node
// One worker: `thor-ts-launch --nproc N -- node worker_main.js <config.json> [--fresh]` trains,
// `... worker_main.js <config.json> --eval <weights> [--split val]` evaluates (with any launcher
// that sets RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT and THOR_TS_JOB_TOKEN). An error ends it with
// one line, `thor-ts train: <message>` (or `thor-ts eval:`), and exit code 2 for a config or usage
// error, 1 for any other.
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { initBackend } from '@thor-ts/backend';
import { joinRingFromEnv } from '@thor-ts/distributed';

import { validateConfig, type TrainConfig } from './config.js';
import { ConfigError } from './config_error.js';
import { evaluateWeights } from './evaluate.js';
import { train } from './trainer.js';

const USAGE = `usage: thor-ts-worker <config.json> [--fresh] | --help | --version
       thor-ts-worker <config.json> --eval <weights> [--split train|val] [--eval-out <file>]
One worker of a job: its rank, the world size, the coordinator and the job token come from the
environment a launcher sets (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, THOR_TS_JOB_TOKEN).`;

let mode = process.argv.includes('--eval') ? 'eval' : 'train';

/** Ends the worker with one line: the error's message, not its stack. */
function fatal(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`thor-ts ${mode}: ${message}`);
  process.exit(error instanceof ConfigError ? 2 : 1);
}
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

try {
  await main();
} catch (error) {
  fatal(error);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        fresh: { type: 'boolean', default: false },
        eval: { type: 'string' },
        split: { type: 'string', default: 'val' },
        'eval-out': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'V', default: false },
      },
    });
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const { values, positionals } = parsed;
  mode = values.eval !== undefined ? 'eval' : 'train';
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.version) {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
    console.log(`thor-ts-worker ${(pkg as { version: string }).version}`);
    return;
  }
  const path = positionals[0];
  if (path === undefined) throw new ConfigError(`expected a config file\n${USAGE}`);
  if (values.split !== 'train' && values.split !== 'val') {
    throw new ConfigError(`--split expected 'train' or 'val', found '${values.split}'`);
  }
  const text = await readFile(path, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path}: expected a JSON config, found: ${(error as Error).message}`);
  }
  const config = validateConfig(json as TrainConfig, path);
  await initBackend();

  // The first SIGINT/SIGTERM stops the run after the step under way, on every rank, with a
  // checkpoint; a second one exits at once. Ctrl-C reaches a worker twice, from the terminal and
  // from its launcher: a repeat within a second counts once.
  const controller = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  let signalledAt = 0;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (signalled !== undefined) {
        if (performance.now() - signalledAt < 1000) return;
        process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
      }
      signalled = sig;
      signalledAt = performance.now();
      controller.abort();
      console.error(`${sig}: finishing this step, then writing a checkpoint (again to exit now)`);
    });
  }

  const ring = await joinRingFromEnv();
  if (values.eval !== undefined) {
    const accuracy = await evaluateWeights(config, values.eval, ring, values.split);
    if (ring.rank === 0) {
      const line = JSON.stringify({ weights: values.eval, split: values.split, ...accuracy });
      console.log(line);
      if (values['eval-out'] !== undefined) await writeFile(values['eval-out'], `${line}\n`);
    }
    await ring.close();
  } else {
    const result = await train(config, ring, { signal: controller.signal, resume: !values.fresh });
    await ring.close();
    // A stopped run is not a finished one: exit as a signalled process would, after the checkpoint.
    if (result.stopped) process.exitCode = 128 + (signalled === 'SIGINT' ? 2 : 15);
  }
}
