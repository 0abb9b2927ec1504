/**
 * Where peers on one machine meet without TCP: a Unix domain socket in a private directory. The
 * bytes are the same WebSocket frames after the same handshake; the kernel moves them between the
 * two processes without the TCP/IP stack, at about half the CPU time per byte of loopback TCP.
 *
 * Two ranks use it only when their {@link machineIdentity} is the same: the same boot of the same
 * kernel, and the same network and mount namespaces, so that the path one of them listens on is
 * the file the other one opens. Containers, `ip netns exec` and other machines differ and stay on
 * TCP.
 */
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A Unix socket's path has to fit sockaddr_un's sun_path (108 bytes on Linux, with its NUL). */
const MAX_PATH_BYTES = 100;

let identity: string | null | undefined;

/**
 * The boot id and the network and mount namespaces of this process, or undefined where /proc does
 * not tell them (e.g. not Linux): then every link stays on TCP.
 */
export function machineIdentity(): string | undefined {
  if (identity === undefined) {
    try {
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      identity = [boot, readlinkSync('/proc/self/ns/net'), readlinkSync('/proc/self/ns/mnt')].join(
        ' ',
      );
    } catch {
      identity = null;
    }
  }
  return identity ?? undefined;
}

/** What a rank tells the others about its Unix socket. */
export interface LocalAddress {
  machine: string;
  path: string;
}

export function isLocalAddress(v: unknown): v is LocalAddress {
  const o = v as Partial<LocalAddress> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.machine === 'string' &&
    typeof o.path === 'string'
  );
}

/**
 * A fresh directory only this user can enter (mkdtemp makes it 0700), for `name`'s socket, or
 * undefined when none can be made there or the path would be too long for a Unix socket: then
 * the links stay on TCP. `remove` deletes the directory.
 */
export function privateSocketPath(name: string): { path: string; remove(): void } | undefined {
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'thor-ts-'));
  } catch {
    return undefined;
  }
  const path = join(dir, name);
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) {
    remove();
    return undefined;
  }
  return { path, remove };
}
