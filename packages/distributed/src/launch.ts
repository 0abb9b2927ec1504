/**
 * Runs `nproc` local workers and their coordinator, like torchrun: each worker gets RANK,
 * WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, THOR_TS_JOB_TOKEN and
 * THOR_TS_RESTART_COUNT; output lines are prefixed with the rank; when one worker fails all are
 * stopped, and the group is started again up to `maxRestarts` times (the workers resume from
 * their last checkpoint).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

import { startCoordinator } from './coordinator.js';

export interface LaunchOptions {
  nproc: number;
  command: string;
  args?: string[];
  /** Default 0. */
  maxRestarts?: number;
  /** Coordinator listen address. Default 127.0.0.1. */
  host?: string;
  /** Workers' collective deadline, passed on as THOR_TS_TIMEOUT_MS. Default 60 000. */
  timeoutMs?: number;
  /** Where prefixed output goes. Default process.stdout / process.stderr. */
  out?: (line: string) => void;
  err?: (line: string) => void;
}

function prefix(stream: NodeJS.ReadableStream | null, tag: string, to: (l: string) => void): void {
  if (stream) createInterface({ input: stream }).on('line', (l) => to(`${tag} ${l}`));
}

async function attempt(o: LaunchOptions, restart: number): Promise<number> {
  const out = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const err = o.err ?? ((l: string) => process.stderr.write(`${l}\n`));
  const token = randomBytes(32).toString('hex');
  const coordinator = await startCoordinator({
    worldSize: o.nproc,
    token,
    host: o.host ?? '127.0.0.1',
    timeoutMs: o.timeoutMs ?? 60_000,
    log: (l) => err(`[launch] ${l}`),
  });
  const children: ChildProcess[] = [];
  let failed: number | undefined;
  const stopAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }, 5_000).unref();
  };
  try {
    const exits = Array.from({ length: o.nproc }, (_, rank) => {
      const child = spawn(o.command, o.args ?? [], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          RANK: String(rank),
          WORLD_SIZE: String(o.nproc),
          LOCAL_RANK: String(rank),
          LOCAL_WORLD_SIZE: String(o.nproc),
          MASTER_ADDR: coordinator.host,
          MASTER_PORT: String(coordinator.port),
          THOR_TS_JOB_TOKEN: token,
          THOR_TS_COORDINATOR: 'external',
          THOR_TS_RESTART_COUNT: String(restart),
          THOR_TS_TIMEOUT_MS: String(o.timeoutMs ?? 60_000),
        },
      });
      children.push(child);
      prefix(child.stdout, `[rank ${rank}]`, out);
      prefix(child.stderr, `[rank ${rank}]`, err);
      return new Promise<number>((resolve) => {
        child.on('error', (e) => {
          err(`[launch] rank ${rank}: cannot start ${o.command}: ${e.message}`);
          resolve(127);
        });
        child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
      }).then((code) => {
        if (code !== 0 && failed === undefined) {
          failed = code;
          err(`[launch] rank ${rank} exited with ${code}; stopping the other workers`);
          stopAll();
        }
        return code;
      });
    });
    await Promise.all(exits);
    return failed ?? 0;
  } finally {
    stopAll();
    await coordinator.close();
  }
}

/** Resolves with the exit code for the launcher: 0 when every worker of some attempt succeeded. */
export async function launch(o: LaunchOptions): Promise<number> {
  if (!Number.isInteger(o.nproc) || o.nproc < 1) {
    throw new Error(`launch: expected --nproc ≥ 1, got ${o.nproc}`);
  }
  const max = o.maxRestarts ?? 0;
  for (let restart = 0; ; restart++) {
    const code = await attempt(o, restart);
    if (code === 0 || restart >= max) return code;
    (o.err ?? ((l: string) => process.stderr.write(`${l}\n`)))(
      `[launch] restarting all ${o.nproc} workers (restart ${restart + 1} of ${max})`,
    );
  }
}
