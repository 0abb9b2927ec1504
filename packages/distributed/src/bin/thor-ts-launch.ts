#!/usr/bin/env node
// thor-ts-launch --nproc N [--max-restarts K] [--host H] [--timeout-ms T] -- <command> [args…]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { launch } from '../launch.js';

const USAGE = `usage: thor-ts-launch --nproc N [--max-restarts K] [--host H] [--timeout-ms T] -- <command> [args…]
Starts N local workers running <command> (each with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
and THOR_TS_JOB_TOKEN set) and their coordinator; restarts them all up to K times after a failure.`;

/** A usage error: exit 2. */
class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const [command, ...args] = dash < 0 ? [] : argv.slice(dash + 1);
  let values;
  try {
    ({ values } = parseArgs({
      args: dash < 0 ? argv : argv.slice(0, dash),
      strict: true,
      options: {
        nproc: { type: 'string' },
        'max-restarts': { type: 'string', default: '0' },
        host: { type: 'string' },
        'timeout-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'V', default: false },
      },
    }));
  } catch (e) {
    throw new UsageError(`thor-ts-launch: ${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.version) {
    const pkg = new URL('../../package.json', import.meta.url);
    console.log(
      `thor-ts-launch ${(JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version}`,
    );
    return 0;
  }
  if (command === undefined || values.nproc === undefined) {
    throw new UsageError(`thor-ts-launch: expected --nproc N and -- <command>\n${USAGE}`);
  }
  const integer = (flag: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) {
      throw new UsageError(
        `thor-ts-launch: --${flag} expected an integer ≥ ${min}, found '${text}'`,
      );
    }
    return n;
  };
  return launch({
    nproc: integer('nproc', values.nproc, 1),
    command,
    args,
    maxRestarts: integer('max-restarts', values['max-restarts'], 0),
    ...(values.host ? { host: values.host } : {}),
    ...(values['timeout-ms'] ? { timeoutMs: integer('timeout-ms', values['timeout-ms'], 1) } : {}),
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(e instanceof UsageError ? e.message : `thor-ts-launch: ${e.message}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
