#!/usr/bin/env node
// thor-ts-launch --nproc N [--max-restarts K] [--host H] [--timeout-ms T] -- <command> [args…]
import { launch } from '../launch.js';

const USAGE =
  'usage: thor-ts-launch --nproc N [--max-restarts K] [--host H] [--timeout-ms T] -- <command> [args…]';

async function main(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const flags = dash < 0 ? argv : argv.slice(0, dash);
  const [command, ...args] = dash < 0 ? [] : argv.slice(dash + 1);
  const opts: Record<string, string> = {};
  for (let i = 0; i < flags.length; i += 2) {
    const [k, v] = [flags[i] as string, flags[i + 1]];
    if (!/^--(nproc|max-restarts|host|timeout-ms)$/.test(k) || v === undefined) {
      throw new Error(`thor-ts-launch: unexpected argument '${k}'\n${USAGE}`);
    }
    opts[k.slice(2)] = v;
  }
  if (command === undefined || opts.nproc === undefined) throw new Error(USAGE);
  return launch({
    nproc: Number(opts.nproc),
    command,
    args,
    maxRestarts: Number(opts['max-restarts'] ?? 0),
    ...(opts.host ? { host: opts.host } : {}),
    ...(opts['timeout-ms'] ? { timeoutMs: Number(opts['timeout-ms']) } : {}),
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(e.message);
    process.exit(2);
  },
);
