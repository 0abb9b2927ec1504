/**
 * Joining a job: listen for peers, join the coordinator (retrying until it is up), learn every
 * rank's address, and connect to the peers this rank exchanges with. The lower rank of a pair dials.
 */
import { type Credentials } from './auth.js';
import { decodeControl, encodeControl, FrameKind, kindName } from './frame.js';
import { dial, Link, listen, type Listener, type Log } from './link.js';

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
  timeoutMs: number;
  maxFrameBytes: number;
  log: Log;
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
  const listener = await listen(
    p.listenHost,
    p.port,
    p.creds,
    { maxFrameBytes: p.maxFrameBytes, timeoutMs: p.timeoutMs, log: p.log, where: `rank ${rank}` },
    (wire, from, role) => {
      const link = new Link(wire, p.creds, `rank ${from}`, p.log);
      if (role !== 'peer' || from >= rank || !wanted.includes(from) || peers.has(from)) {
        p.log(`rank ${rank} refused a ${role} connection claiming rank ${from}`);
        link.close();
        return;
      }
      peers.set(from, link);
      arrived();
    },
  );
  try {
    const coordinator = await dialRetrying(p);
    coordinator.send(
      encodeControl(p.creds.tag, FrameKind.join, {
        host: p.advertiseHost,
        port: listener.port,
        worldSize: n,
      }),
    );
    const addresses = await new Promise<[string, number][]>((resolve, reject) => {
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
            resolve(body.peers as [string, number][]);
          } else if (h.kind === FrameKind.abort) {
            reject(new Error(`rank ${rank}: the job was aborted: ${String(body.message)}`));
          } else reject(new Error(`rank ${rank}: expected peers, got ${kindName(h.kind)}`));
        },
        lost: (why) =>
          reject(new Error(`rank ${rank}: lost the coordinator while joining: ${why}`)),
      });
    });
    const dialOpts = { maxFrameBytes: p.maxFrameBytes, timeoutMs: p.timeoutMs, log: p.log };
    await Promise.all(
      wanted
        .filter((r) => r > rank)
        .map(async (r) => {
          const [host, port] = addresses[r] ?? [];
          const url = `ws://${host}:${port}`;
          peers.set(r, await dial(url, p.creds, rank, 'peer', `rank ${r}`, dialOpts));
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
  }
}
