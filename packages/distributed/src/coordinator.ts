/**
 * The coordinator: rendezvous (workers join with rank and address and learn everyone's), the
 * authoritative initial weights, barriers, heartbeats and abort propagation. Runs alone (the
 * launcher) or inside rank 0.
 */
import { jobTag, encodeControl, decodeControl, FrameKind, kindName } from './frame.js';
import { InitialStore } from './initial_store.js';
import { Link, listen, MAX_PENDING_HANDSHAKES, type Log } from './link.js';
import { isLocalAddress, type LocalAddress } from './local_socket.js';

export interface CoordinatorOptions {
  worldSize: number;
  /** The shared secret every worker proves it knows. */
  token: string;
  /** Frames of other jobs are refused. Default 'thor-ts'. */
  jobId?: string;
  /** Default 127.0.0.1 (loopback). */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** A worker silent (no heartbeat answer) this long is declared dead. Default 60 000 ms. */
  timeoutMs?: number;
  /** How often workers are pinged. Default 5 000 ms, at most a third of `timeoutMs`. */
  heartbeatMs?: number;
  log?: Log;
}

export interface Coordinator {
  host: string;
  port: number;
  /** `host:port`, what workers pass as `coordinator`. */
  address: string;
  /** Resolves with the abort message once a worker fails, for launchers that tear down. */
  aborted: Promise<string>;
  close(): Promise<void>;
}

interface Member {
  link: Link;
  host: string;
  port: number;
  /** Its Unix socket, for ranks on the same machine (see local_socket.ts). */
  local: LocalAddress | undefined;
  lastPong: number;
  left: boolean;
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const { worldSize, token } = opts;
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    throw new Error(`startCoordinator: expected worldSize ≥ 1, got ${worldSize}`);
  }
  const jobId = opts.jobId ?? 'thor-ts';
  const creds = { token, jobId, tag: jobTag(jobId) };
  const timeoutMs = opts.timeoutMs ?? 60_000;
  // At least three pings per deadline, so one late answer (a busy event loop, timer jitter) never
  // makes a live worker look dead.
  const heartbeatMs = Math.min(opts.heartbeatMs ?? 5_000, timeoutMs / 3);
  const log = opts.log ?? ((l: string) => console.error(`[coordinator] ${l}`));
  const members = new Map<number, Member>();
  const barriers = new Map<number, Set<number>>();
  let abortMessage: string | undefined;
  let announced = false;
  let resolveAborted: (m: string) => void = () => undefined;
  const aborted = new Promise<string>((r) => (resolveAborted = r));
  const initial = new InitialStore(creds.tag, log);
  const readers = new Set<Link>();

  const sendAll = (kind: FrameKind, body: unknown, except?: number): void => {
    const frame = encodeControl(creds.tag, kind, body);
    for (const [r, m] of members) if (r !== except && !m.left) m.link.send(frame);
  };
  const abort = (message: string, from?: number): void => {
    if (abortMessage !== undefined) return;
    abortMessage = message;
    log(`aborting the job: ${message}`);
    sendAll(FrameKind.abort, { message }, from);
    resolveAborted(message);
  };

  const onFrame = (rank: number, kind: number, body: Record<string, unknown>): void => {
    const member = members.get(rank);
    if (!member) return;
    if (kind === FrameKind.barrier && typeof body.id === 'number') {
      const seen = barriers.get(body.id) ?? new Set<number>();
      seen.add(rank);
      barriers.set(body.id, seen);
      if (seen.size === worldSize) {
        barriers.delete(body.id);
        sendAll(FrameKind.release, { id: body.id });
      }
    } else if (kind === FrameKind.abort && typeof body.message === 'string') {
      abort(body.message, rank);
    } else if (kind === FrameKind.stalled && typeof body.message === 'string') {
      blame(body.message);
    } else {
      log(`rank ${rank} sent an unexpected ${kindName(kind)} frame; ignored`);
    }
  };

  // A worker timed out: ping everyone; whoever does not answer quickly is the one to name.
  let blaming = false;
  const blame = (message: string): void => {
    if (blaming || abortMessage !== undefined) return;
    blaming = true;
    const asked = Date.now();
    for (const m of members.values()) if (!m.left) m.link.ping();
    setTimeout(
      () => {
        const silent = [...members].filter(([, m]) => !m.left && m.lastPong < asked);
        const names = silent.map(([r]) => r);
        abort(
          names.length > 0
            ? `rank ${names.join(', rank ')} stopped responding (${message})`
            : message,
        );
      },
      Math.min(2_000, timeoutMs / 4),
    ).unref();
  };

  const host = opts.host ?? '127.0.0.1';
  const listener = await listen(
    { host, port: opts.port ?? 0 },
    creds,
    {
      maxFrameBytes: 1 << 20,
      timeoutMs,
      log,
      where: 'coordinator',
      // Every rank may dial at once, and restarted ones again.
      maxPending: Math.max(MAX_PENDING_HANDSHAKES, 2 * worldSize),
    },
    (wire, rank, role) => {
      const link = new Link(wire, creds, `rank ${rank}`, log);
      if (role === 'reader') {
        // Only fetches the initial weights (a restarted worker); never part of the ring.
        readers.add(link);
        link.listen({
          frame: (h, data) => {
            try {
              if (h.kind === FrameKind.fetch && initial.handle(link, rank, h, data)) return;
            } catch (e) {
              log(`a reader claiming rank ${rank}: ${(e as Error).message}`);
            }
            log(`a reader claiming rank ${rank} sent a ${kindName(h.kind)} frame; closed`);
            link.close();
          },
          lost: () => readers.delete(link),
        });
        return;
      }
      if (role !== 'worker' || rank >= worldSize || members.has(rank)) {
        log(
          role !== 'worker'
            ? `rank ${rank} connected as a ${role}, expected a worker; closed`
            : rank >= worldSize
              ? `rank ${rank} joined a job of world size ${worldSize}; closed`
              : `rank ${rank} joined twice; the second connection was closed`,
        );
        link.close();
        return;
      }
      let joined = false;
      link.listen({
        frame: (h, data) => {
          let body: Record<string, unknown>;
          try {
            if (joined && initial.handle(link, rank, h, data)) return;
            body = decodeControl(data);
          } catch (e) {
            log(`rank ${rank}: ${(e as Error).message}`);
            return;
          }
          if (joined) return onFrame(rank, h.kind, body);
          const { host, port, worldSize: ws, local } = body;
          if (h.kind !== FrameKind.join || typeof host !== 'string' || typeof port !== 'number') {
            log(
              `rank ${rank}: expected a join frame {host, port, worldSize}, got ${kindName(h.kind)}`,
            );
            link.close();
            return;
          }
          if (ws !== worldSize) {
            abort(
              `rank ${rank} expects world size ${String(ws)}, the coordinator has ${worldSize}`,
            );
            link.send(encodeControl(creds.tag, FrameKind.abort, { message: abortMessage }));
            return;
          }
          joined = true;
          members.set(rank, {
            link,
            host,
            port,
            local: isLocalAddress(local) ? local : undefined,
            lastPong: Date.now(),
            left: false,
          });
          link.onPong(() => {
            const m = members.get(rank);
            if (m) m.lastPong = Date.now();
          });
          if (abortMessage !== undefined) {
            link.send(encodeControl(creds.tag, FrameKind.abort, { message: abortMessage }));
          } else if (members.size === worldSize && !announced) {
            announced = true;
            const peers = Array.from({ length: worldSize }, (_, r) => {
              const m = members.get(r) as Member;
              return m.local ? [m.host, m.port, m.local] : [m.host, m.port];
            });
            sendAll(FrameKind.peers, { peers });
          }
        },
        lost: (why) => {
          const m = members.get(rank);
          if (!m) return;
          m.left = true;
          if (/\(1000 done\)/.test(why)) return; // a worker that closed its ring normally
          abort(`rank ${rank} left the job: ${why}`);
        },
      });
    },
  );

  const beat = setInterval(() => {
    const now = Date.now();
    for (const [r, m] of members) {
      if (m.left) continue;
      if (now - m.lastPong > timeoutMs) {
        abort(`rank ${r} has not answered heartbeats for ${now - m.lastPong} ms`);
      }
      m.link.ping();
    }
  }, heartbeatMs);
  beat.unref();

  return {
    host,
    port: listener.port,
    address: `${host}:${listener.port}`,
    aborted,
    close: async () => {
      clearInterval(beat);
      for (const l of readers) l.close();
      for (const m of members.values()) {
        m.left = true;
        m.link.close();
      }
      await listener.close();
    },
  };
}
