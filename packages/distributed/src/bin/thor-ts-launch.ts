#!/usr/bin/env node
// thor-ts-launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A [--master-port P]]
//                [--max-restarts K] [--host H] [--timeout-ms T] -- <command> [args…]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { launch, LaunchOptionsError } from '../launch.js';
import { LAUNCH_FLAGS, LAUNCH_USAGE, launchOptionsFromFlags } from '../launch_flags.js';

const USAGE = `usage: thor-ts-launch ${LAUNCH_USAGE}
                      [--host <h>] [--timeout-ms <t>] -- <command> [args…]
Starts this machine's workers running <command>, each with RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT and THOR_TS_JOB_TOKEN set, as torchrun does (--nproc is an alias of
--nproc-per-node). Machine 0 (--node-rank 0) also runs the job's coordinator, listening on --host
(default 127.0.0.1 on one machine, every interface with several) at --master-port (default 29500
with several machines). A job on several machines runs this command on each, all with the same
--nnodes, --master-addr and --master-port and the same secret in THOR_TS_JOB_TOKEN. On one
machine, all workers are restarted up to K times after a failure.`;

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
        ...LAUNCH_FLAGS,
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
  if (command === undefined) {
    throw new UsageError(`thor-ts-launch: expected -- <command>\n${USAGE}`);
  }
  const where = launchOptionsFromFlags(values, 'thor-ts-launch');
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
    ...where,
    command,
    args,
    ...(values.host ? { host: values.host } : {}),
    ...(values['timeout-ms'] ? { timeoutMs: integer('timeout-ms', values['timeout-ms'], 1) } : {}),
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    const usage = e instanceof UsageError || e instanceof LaunchOptionsError;
    console.error(usage ? e.message : `thor-ts-launch: ${e.message}`);
    process.exit(usage ? 2 : 1);
  },
);
