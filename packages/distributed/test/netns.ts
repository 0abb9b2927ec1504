// Network namespaces as separate machines on one host: a switch namespace with a bridge, and one
// namespace per machine joined to it by a veth pair (needs Linux, root and iproute2).
import { spawnSync } from 'node:child_process';

const ip = (...args: string[]): { ok: boolean; err: string } => {
  const p = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: p.status === 0, err: (p.error?.message ?? p.stderr ?? '').trim() };
};
const must = (...args: string[]): void => {
  const { ok, err } = ip(...args);
  if (!ok) throw new Error(`ip ${args.join(' ')} failed: ${err}`);
};
const tc = (...args: string[]): void => {
  const p = spawnSync('tc', args, { encoding: 'utf8' });
  if (p.status !== 0) {
    throw new Error(`tc ${args.join(' ')} failed: ${(p.error?.message ?? p.stderr ?? '').trim()}`);
  }
};

/** Why this machine cannot build the network, or undefined when it can. */
export function netnsUnsupported(): string | undefined {
  if (process.platform !== 'linux')
    return `needs Linux network namespaces, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  if (!ip('-V').ok) return 'needs iproute2’s `ip` command, which is not installed';
  const probe = `tt${process.pid % 100_000}probe`;
  const add = ip('netns', 'add', probe);
  if (!add.ok) return `cannot create a network namespace here: ${add.err}`;
  const bridge = ip('-n', probe, 'link', 'add', 'br0', 'type', 'bridge');
  ip('netns', 'del', probe);
  if (!bridge.ok) return `cannot create a bridge in a network namespace here: ${bridge.err}`;
  return undefined;
}

export interface Network {
  /** Machine r's namespace, for `ip netns exec`. */
  ns(r: number): string;
  /** Machine r's IPv4 address on the bridge. */
  address(r: number): string;
  /**
   * Limits every machine's link to `mbit` megabits per second each way (a token bucket on both
   * ends of its veth pair, as `tc` shapes a NIC).
   */
  limit(mbit: number): void;
  /** Removes every namespace (and so every link) of the network. */
  cleanUp(): void;
}

/**
 * `n` machines on one bridge, named after `name` and this process (so that parallel test files
 * do not collide), each with its own address; built afresh (after removing a leftover).
 */
export function buildNetwork(n: number, name: string, subnet: number): Network {
  const tag = `t${name}${process.pid % 100_000}`;
  const SWITCH = `${tag}sw`;
  const ns = (r: number): string => `${tag}m${r}`;
  const address = (r: number): string => `10.${subnet}.${process.pid % 250}.${r + 1}`;
  const cleanUp = (): void => {
    for (const space of [SWITCH, ...Array.from({ length: n }, (_, r) => ns(r))]) {
      ip('netns', 'del', space);
    }
  };
  cleanUp();
  must('netns', 'add', SWITCH);
  must('-n', SWITCH, 'link', 'add', 'br0', 'type', 'bridge');
  must('-n', SWITCH, 'link', 'set', 'br0', 'up');
  for (let r = 0; r < n; r++) {
    must('netns', 'add', ns(r));
    must('-n', ns(r), 'link', 'set', 'lo', 'up');
    must(
      '-n',
      SWITCH,
      'link',
      'add',
      `p${r}`,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns(r),
    );
    must('-n', SWITCH, 'link', 'set', `p${r}`, 'master', 'br0', 'up');
    must('-n', ns(r), 'addr', 'add', `${address(r)}/24`, 'dev', 'eth0');
    must('-n', ns(r), 'link', 'set', 'eth0', 'up');
  }
  const limit = (mbit: number): void => {
    // A burst of at least one timer tick's worth of bytes at this rate, so the bucket can reach it.
    const tbf = [
      'root',
      'tbf',
      'rate',
      `${mbit}mbit`,
      'burst',
      `${Math.max(64, mbit / 8)}kb`,
      'latency',
      '50ms',
    ];
    for (let r = 0; r < n; r++) {
      tc('-n', ns(r), 'qdisc', 'replace', 'dev', 'eth0', ...tbf);
      tc('-n', SWITCH, 'qdisc', 'replace', 'dev', `p${r}`, ...tbf);
    }
  };
  return { ns, address, limit, cleanUp };
}
