/**
 * Joins the job described by the environment: the launcher's variables (see `readLaunchEnv`), the
 * job token in THOR_TS_JOB_TOKEN, and optionally THOR_TS_JOB_ID, THOR_TS_LISTEN_HOST and
 * THOR_TS_ADVERTISE_HOST (by default, the address of the interface that leads to MASTER_ADDR),
 * THOR_TS_TIMEOUT_MS and THOR_TS_UNIX_SOCKETS (0: peers on one machine talk over TCP too). Rank 0 hosts the coordinator at MASTER_ADDR:MASTER_PORT unless
 * THOR_TS_COORDINATOR=external (thor-ts-launch runs it itself).
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { hostname } from 'node:os';

import { readLaunchEnv } from './launch_env.js';
import { joinRing, type Ring, type RingOptions } from './ring.js';

const LOOPBACK = /^(127\.|localhost$|::1$)/;

function unixSockets(value: string): boolean {
  if (value === '1' || value === '0') return value === '1';
  throw new Error(`joinRingFromEnv: expected THOR_TS_UNIX_SOCKETS to be 0 or 1, got "${value}"`);
}

/**
 * The address of this machine's interface that routes to `host:port`, as peers there see this
 * machine (a UDP socket is connected, which sends nothing); the host name when there is no route.
 */
async function routeAddress(host: string, port: number): Promise<string> {
  const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(port, host, resolve);
    });
    return socket.address().address;
  } catch {
    return hostname();
  } finally {
    socket.close();
  }
}

export async function joinRingFromEnv(
  overrides: Partial<RingOptions> = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<Ring> {
  const e = readLaunchEnv(env);
  const token = overrides.token ?? env.THOR_TS_JOB_TOKEN;
  if (!token) {
    throw new Error('joinRingFromEnv: expected the job token in THOR_TS_JOB_TOKEN, it is not set');
  }
  const local = LOOPBACK.test(e.masterAddr);
  const listenHost = env.THOR_TS_LISTEN_HOST ?? (local ? '127.0.0.1' : '0.0.0.0');
  const options: RingOptions = {
    rank: e.rank,
    worldSize: e.worldSize,
    coordinator: `${e.masterAddr}:${e.masterPort}`,
    token,
    listenHost,
    advertiseHost:
      env.THOR_TS_ADVERTISE_HOST ??
      (local ? '127.0.0.1' : await routeAddress(e.masterAddr, e.masterPort)),
    ...(env.THOR_TS_JOB_ID ? { jobId: env.THOR_TS_JOB_ID } : {}),
    ...(env.THOR_TS_TIMEOUT_MS ? { timeoutMs: Number(env.THOR_TS_TIMEOUT_MS) } : {}),
    ...(env.THOR_TS_UNIX_SOCKETS ? { unixSockets: unixSockets(env.THOR_TS_UNIX_SOCKETS) } : {}),
    ...(e.rank === 0 && env.THOR_TS_COORDINATOR !== 'external'
      ? { hostCoordinator: local ? '127.0.0.1' : '0.0.0.0' }
      : {}),
    ...overrides,
  };
  return joinRing(options);
}
