/**
 * Runs this machine's workers of a job, like torchrun: `nproc` workers here, on each of `nnodes`
 * machines that each run a launcher with their own `nodeRank`; machine 0 also runs the job's
 * coordinator at `masterAddr:masterPort`. Each worker gets RANK, WORLD_SIZE, LOCAL_RANK,
 * LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT, THOR_TS_JOB_TOKEN and
 * THOR_TS_RESTART_COUNT; output lines are prefixed with the rank; when one worker fails all are
 * stopped (on other machines, by the coordinator's abort), and on a single machine the group is
 * started again up to `maxRestarts` times (the workers resume from their last checkpoint).
 * SIGINT or SIGTERM to the launcher is passed on to the workers, which are then waited for (a
 * second signal kills them) and not restarted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import { createInterface } from 'node:readline';

import { startCoordinator } from './coordinator.js';

export interface LaunchOptions {
  /** Workers on this machine (torchrun's --nproc-per-node). */
  nproc: number;
  command: string;
  args?: string[];
  /** Machines in the job, each running a launcher. Default 1. */
  nnodes?: number;
  /** This machine's place, 0 … nnodes − 1: its workers' ranks follow those of the machines before it. Default 0. */
  nodeRank?: number;
  /** The address at which every machine reaches machine 0's coordinator. Needed with several machines. */
  masterAddr?: string;
  /** The coordinator's port. Default: 29500 with several machines, any free port on one. */
  masterPort?: number;
  /**
   * The job's shared secret, the same on every machine. Default: THOR_TS_JOB_TOKEN from the
   * environment (required with several machines), else a random one.
   */
  token?: string;
  /** Restarts after a failure, on a single machine. Default 0. */
  maxRestarts?: number;
  /** Coordinator listen address. Default 127.0.0.1, or 0.0.0.0 (every interface) with several machines. */
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

/**
 * Copies a worker's output to `to` with `tag` at the start of every line and after every '\r'
 * (so a progress line that redraws itself in place keeps its tag), a whole line or redraw at a
 * time, so ranks' lines do not interleave.
 */
function prefixRaw(
  stream: NodeJS.ReadableStream | null,
  tag: string,
  to: NodeJS.WriteStream,
): void {
  if (!stream) return;
  let pending = '';
  let atStart = true;
  const emit = (text: string) => {
    const tagged = text.replace(/([\r\n])(?=[^\r\n])/g, `$1${tag} `);
    to.write(atStart && !/^[\r\n]/.test(text) ? `${tag} ${tagged}` : tagged);
    atStart = /[\r\n]$/.test(text);
  };
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    const end = Math.max(pending.lastIndexOf('\n'), pending.lastIndexOf('\r')) + 1;
    if (end > 0) {
      emit(pending.slice(0, end));
      pending = pending.slice(end);
    }
  });
  stream.on('end', () => {
    if (pending !== '') emit(`${pending}\n`);
  });
}

/** Signals the launcher passes on to its workers, and how it then ends. */
const forwarded = ['SIGINT', 'SIGTERM'] as const;

async function attempt(
  o: LaunchOptions,
  restart: number,
  interrupted: { signal?: NodeJS.Signals; at?: number },
): Promise<number> {
  const out = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const err = o.err ?? ((l: string) => process.stderr.write(`${l}\n`));
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  const token = o.token || process.env.THOR_TS_JOB_TOKEN || randomBytes(32).toString('hex');
  // Machine 0 hosts the coordinator; the others' workers dial it (retrying until it is up).
  const coordinator =
    nodeRank === 0
      ? await startCoordinator({
          worldSize: nnodes * o.nproc,
          token,
          host: o.host ?? (nnodes > 1 ? '0.0.0.0' : '127.0.0.1'),
          port: o.masterPort ?? (nnodes > 1 ? DEFAULT_MASTER_PORT : 0),
          timeoutMs: o.timeoutMs ?? 60_000,
          log: (l) => err(`[launch] ${l}`),
        })
      : undefined;
  const master =
    nnodes > 1
      ? { addr: o.masterAddr!, port: o.masterPort ?? DEFAULT_MASTER_PORT }
      : { addr: coordinator!.host, port: coordinator!.port };
  const children: ChildProcess[] = [];
  let failed: number | undefined;
  // The first signal goes on to the workers (they checkpoint and exit); a second kills them.
  const onSignal = (signal: NodeJS.Signals): void => {
    // Ctrl-C reaches the launcher twice when a command that delegates to it passes it on too: the
    // same signal again within a second counts once.
    if (interrupted.signal === signal && performance.now() - interrupted.at! < 1000) return;
    interrupted.at ??= performance.now();
    const again = interrupted.signal !== undefined;
    interrupted.signal ??= signal;
    err(`[launch] ${signal}: ${again ? 'killing' : 'passing it on to'} the workers`);
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) c.kill(again ? 'SIGKILL' : signal);
    }
  };
  for (const sig of forwarded) process.on(sig, onSignal);
  const stopAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }, 5_000).unref();
  };
  try {
    const exits = Array.from({ length: o.nproc }, (_, local) => {
      const rank = nodeRank * o.nproc + local;
      const child = spawn(o.command, o.args ?? [], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          RANK: String(rank),
          WORLD_SIZE: String(nnodes * o.nproc),
          LOCAL_RANK: String(local),
          LOCAL_WORLD_SIZE: String(o.nproc),
          GROUP_RANK: String(nodeRank),
          MASTER_ADDR: master.addr,
          MASTER_PORT: String(master.port),
          THOR_TS_JOB_TOKEN: token,
          THOR_TS_COORDINATOR: 'external',
          THOR_TS_RESTART_COUNT: String(restart),
          THOR_TS_TIMEOUT_MS: String(o.timeoutMs ?? 60_000),
          // Workers' output is piped: tell them when it ends up on a terminal anyway.
          ...(o.err === undefined && process.stderr.isTTY ? { THOR_TS_TTY: '1' } : {}),
        },
      });
      children.push(child);
      const tag = `[rank ${rank}]`;
      if (o.out === undefined) prefixRaw(child.stdout, tag, process.stdout);
      else prefix(child.stdout, tag, out);
      if (o.err === undefined) prefixRaw(child.stderr, tag, process.stderr);
      else prefix(child.stderr, tag, err);
      // The worker's last line on stderr: what a failing one said last (its error).
      let said = '';
      if (child.stderr) createInterface({ input: child.stderr }).on('line', (l) => (said = l));
      let killedBy: NodeJS.Signals | null = null;
      return new Promise<number>((resolve) => {
        child.on('error', (e) => {
          err(`[launch] rank ${rank}: cannot start ${o.command}: ${e.message}`);
          resolve(127);
        });
        child.on('exit', (code, signal) => {
          killedBy = signal;
          resolve(code ?? (signal === null ? 1 : 128 + signalNumber(signal)));
        });
      }).then((code) => {
        if (code !== 0 && failed === undefined) {
          failed = code;
          if (interrupted.signal === undefined) {
            const how =
              killedBy === null
                ? `exited with ${code}`
                : `was killed by ${killedBy} (exit code ${code})`;
            const last = said.trim() === '' ? '' : ` (its last line: ${said.trim()})`;
            err(`[launch] rank ${rank} ${how}${last}; stopping the other workers`);
            stopAll();
          }
        }
        return code;
      });
    });
    await Promise.all(exits);
    return failed ?? 0;
  } finally {
    for (const sig of forwarded) process.off(sig, onSignal);
    stopAll();
    await coordinator?.close();
  }
}

/** The coordinator's port when several machines meet at it (torchrun's default). */
export const DEFAULT_MASTER_PORT = 29500;

/** Launch options that cannot work together, named by the launcher's flags: a usage error. */
export class LaunchOptionsError extends Error {
  override name = 'LaunchOptionsError';
}

/** `o`'s shape checked, with the flag each field comes from in the messages. */
export function checkLaunchOptions(o: LaunchOptions): void {
  const integer = (name: string, v: number | undefined, min: number, max = Infinity): void => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min && v <= max)) {
      const range = max === Infinity ? `≥ ${min}` : `in ${min}…${max}`;
      throw new LaunchOptionsError(
        `launch: expected --${name} to be an integer ${range}, found ${v}`,
      );
    }
  };
  integer('nproc-per-node', o.nproc, 1);
  if (o.nproc === undefined)
    throw new LaunchOptionsError(
      'launch: expected --nproc-per-node <n>, the number of workers to start on this machine',
    );
  integer('nnodes', o.nnodes, 1);
  const nnodes = o.nnodes ?? 1;
  integer('node-rank', o.nodeRank, 0, nnodes - 1);
  integer('master-port', o.masterPort, 1, 65535);
  integer('max-restarts', o.maxRestarts, 0);
  if (nnodes === 1) return;
  if (!o.masterAddr) {
    throw new LaunchOptionsError(
      `launch: a job on ${nnodes} machines expected --master-addr, the address at which every machine reaches machine 0`,
    );
  }
  if (!(o.token ?? process.env.THOR_TS_JOB_TOKEN)) {
    throw new LaunchOptionsError(
      `launch: a job on ${nnodes} machines expected the same secret on each in THOR_TS_JOB_TOKEN (e.g. from \`openssl rand -hex 32\`), found it unset`,
    );
  }
  if ((o.maxRestarts ?? 0) > 0) {
    throw new LaunchOptionsError(
      `launch: --max-restarts restarts the workers of one machine; a job on ${nnodes} machines is restarted by its scheduler (Kubernetes, Slurm's --requeue), and resumes from its last checkpoint`,
    );
  }
}

/** Resolves with the exit code for the launcher: 0 when every worker of some attempt succeeded. */
export async function launch(o: LaunchOptions): Promise<number> {
  checkLaunchOptions(o);
  const max = o.maxRestarts ?? 0;
  const interrupted: { signal?: NodeJS.Signals; at?: number } = {};
  for (let restart = 0; ; restart++) {
    const code = await attempt(o, restart, interrupted);
    if (interrupted.signal !== undefined)
      return code === 0 ? 0 : 128 + signalNumber(interrupted.signal);
    if (code === 0 || restart >= max) return code;
    (o.err ?? ((l: string) => process.stderr.write(`${l}\n`)))(
      `[launch] restarting all ${o.nproc} workers (restart ${restart + 1} of ${max})`,
    );
  }
}

/** The signal's number on this system (SIGINT 2, SIGKILL 9, SIGTERM 15…), for 128 + n exit codes. */
function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal] ?? 0;
}
