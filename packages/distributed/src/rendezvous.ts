/**
 * Joining a job: listen for peers, join the coordinator (retrying until it is up), learn every
 * rank's address, and connect to the peers this rank exchanges with. The lower rank of a pair dials:
 * over the peer's Unix socket when both are on the same machine (see local_socket.ts), else, or
 * when that socket cannot be reached, over TCP.
 */
import { type Credentials } from './auth.js';
import { decodeControl, encodeControl, FrameKind, kindName } from './frame.js';
import {
  dial,
  Link,
  listen,
  MAX_PENDING_HANDSHAKES,
  type Listener,
  type Log,
  UnreachableError,
} from './link.js';
import {
  isLocalAddress,
  type LocalAddress,
  machineIdentity,
  privateSocketPath,
} from './local_socket.js';

/** Ranks that `rank` exchanges with: ring neighbours and, for a power-of-two n, XOR partners. */
export function neighbours(rank: number, n: number): number[] {
  const set = new Set<number>();
  if (n > 1) set.add((rank + 1) % n).add((rank + n - 1) % n);
  if (n > 1 && (n & (n - 1)) === 0) for (let d = 1; d < n; d <<= 1) set.add(rank ^ d);
  return [...set].sort((a, b) => a - b);
}

export interface Joined {
  coordinator: Link;
  listener: Listener;
  peers: Map<number, Link>;
}

export interface JoinParams {
  rank: number;
  worldSize: number;
  coordinator: string;
  creds: Credentials;
  listenHost: string;
  advertiseHost: string;
  port: number;
  /** Whether peers on this machine connect over a Unix socket. */
  unixSockets: boolean;
  timeoutMs: number;
  maxFrameBytes: number;
  log: Log;
}

/** What the coordinator says of each rank: where it listens on TCP, and maybe its Unix socket. */
type PeerAddress = [host: string, port: number, local?: LocalAddress];

/**
 * Listens on TCP and, where peers on this machine can use one, on a Unix socket too (on TCP alone
 * when that socket cannot be made). The Unix socket only serves the rendezvous: `closeLocal`
 * closes it and removes its directory once every peer is connected, so no file is left behind by
 * a worker killed later.
 */
async function listenForPeers(
  p: JoinParams,
  accepted: Parameters<typeof listen>[3],
): Promise<{ listener: Listener; local: LocalAddress | undefined; closeLocal(): Promise<void> }> {
  const opts = {
    maxFrameBytes: p.maxFrameBytes,
    timeoutMs: p.timeoutMs,
    log: p.log,
    where: `rank ${p.rank}`,
    maxPending: Math.max(MAX_PENDING_HANDSHAKES, 2 * p.worldSize),
  };
  const listener = await listen({ host: p.listenHost, port: p.port }, p.creds, opts, accepted);
  const machine = p.unixSockets ? machineIdentity() : undefined;
  const socket = machine === undefined ? undefined : privateSocketPath(`rank${p.rank}.sock`);
  if (machine === undefined || socket === undefined) {
    return { listener, local: undefined, closeLocal: () => Promise.resolve() };
  }
  try {
    const unix = await listen({ path: socket.path }, p.creds, opts, accepted);
    const closeLocal = async (): Promise<void> => {
      await unix.close();
      socket.remove();
    };
    return { listener, local: { machine, path: socket.path }, closeLocal };
  } catch (e) {
    socket.remove();
    p.log(`${(e as Error).message}; peers on this machine will dial its TCP address`);
    return { listener, local: undefined, closeLocal: () => Promise.resolve() };
  }
}

/** Dials rank `r`: its Unix socket if it shares this machine and the socket answers, else TCP. */
export async function dialPeer(
  p: JoinParams,
  r: number,
  [host, port, local]: PeerAddress,
): Promise<Link> {
  const opts = { maxFrameBytes: p.maxFrameBytes, timeoutMs: p.timeoutMs, log: p.log };
  const name = `rank ${r}`;
  if (p.unixSockets && isLocalAddress(local) && local.machine === machineIdentity()) {
    try {
      return await dial(`ws+unix://${local.path}:/`, p.creds, p.rank, 'peer', name, opts);
    } catch (e) {
      if (!(e instanceof UnreachableError)) throw e;
      p.log(`rank ${p.rank}: ${(e as Error).message}; dialling its TCP address instead`);
    }
  }
  return dial(`ws://${host}:${port}`, p.creds, p.rank, 'peer', name, opts);
}

async function dialRetrying(p: JoinParams): Promise<Link> {
  const deadline = Date.now() + p.timeoutMs;
  const opts = { maxFrameBytes: p.maxFrameBytes, timeoutMs: p.timeoutMs, log: p.log };
  for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
    try {
      return await dial(
        `ws://${p.coordinator}`,
        p.creds,
        p.rank,
        'worker',
        'the coordinator',
        opts,
      );
    } catch (e) {
      const msg = (e as Error).message;
      if (!/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH/.test(msg) || Date.now() > deadline) {
        throw new Error(`rank ${p.rank} cannot join the coordinator at ${p.coordinator}: ${msg}`);
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

export async function join(p: JoinParams): Promise<Joined> {
  const { rank, worldSize: n } = p;
  const wanted = neighbours(rank, n);
  const peers = new Map<number, Link>();
  let arrived: () => void = () => undefined;
  const { listener, local, closeLocal } = await listenForPeers(p, (wire, from, role, transport) => {
    const link = new Link(wire, p.creds, `rank ${from}`, p.log, transport);
    if (role !== 'peer' || from >= rank || !wanted.includes(from) || peers.has(from)) {
      p.log(`rank ${rank} refused a ${role} connection claiming rank ${from}`);
      link.close();
      return;
    }
    peers.set(from, link);
    arrived();
  });
  try {
    const coordinator = await dialRetrying(p);
    coordinator.send(
      encodeControl(p.creds.tag, FrameKind.join, {
        host: p.advertiseHost,
        port: listener.port,
        worldSize: n,
        ...(local ? { local } : {}),
      }),
    );
    const addresses = await new Promise<PeerAddress[]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`rank ${rank}: not all ${n} ranks joined within ${p.timeoutMs} ms`)),
        p.timeoutMs,
      );
      coordinator.listen({
        frame: (h, data) => {
          clearTimeout(timer);
          const body = decodeControl(data);
          if (h.kind === FrameKind.peers && Array.isArray(body.peers)) {
            coordinator.pause(); // later frames wait for the ring
            resolve(body.peers as PeerAddress[]);
          } else if (h.kind === FrameKind.abort) {
            reject(new Error(`rank ${rank}: the job was aborted: ${String(body.message)}`));
          } else reject(new Error(`rank ${rank}: expected peers, got ${kindName(h.kind)}`));
        },
        lost: (why) =>
          reject(new Error(`rank ${rank}: lost the coordinator while joining: ${why}`)),
      });
    });
    await Promise.all(
      wanted
        .filter((r) => r > rank)
        .map(async (r) => {
          const address = addresses[r];
          if (!Array.isArray(address)) throw new Error(`rank ${rank}: no address for rank ${r}`);
          peers.set(r, await dialPeer(p, r, address));
        }),
    );
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (wanted.every((r) => peers.has(r))) {
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        const missing = wanted.filter((r) => !peers.has(r));
        reject(
          new Error(
            `rank ${rank}: rank ${missing.join(', ')} did not connect within ${p.timeoutMs} ms`,
          ),
        );
      }, p.timeoutMs);
      arrived = check;
      check();
    });
    return { coordinator, listener, peers };
  } catch (e) {
    for (const l of peers.values()) l.close();
    await listener.close();
    throw e;
  } finally {
    await closeLocal();
  }
}
