import { describe, expect, it } from 'vitest';

import { joinRingFromEnv, type Transport } from '../dist/index.js';
import { jobTag } from '../dist/frame.js';
import { listen } from '../dist/link.js';
import { machineIdentity } from '../dist/local_socket.js';
import { dialPeer, type JoinParams } from '../dist/rendezvous.js';
import { TOKEN, values, withRing } from './with_ring.js';

const linux = process.platform === 'linux' && machineIdentity() !== undefined;
const LENGTH = 1_000_003;

/** Every rank's sum of LENGTH values and its links' transports. */
async function sumAndTransports(unixSockets: boolean): Promise<[Float32Array, Transport[]][]> {
  return withRing(
    4,
    async (ring) => {
      const sum = await ring.allReduce(values(LENGTH, 1000 + ring.rank));
      return [sum, [...ring.transports.values()]];
    },
    { unixSockets },
  );
}

describe('links between peers on one machine', () => {
  it.skipIf(!linux)(
    `run on Unix sockets by default, on TCP with unixSockets false, and sum to the same bytes${linux ? '' : ' (skipped: needs Linux’s /proc to tell one machine)'}`,
    async () => {
      const unix = await sumAndTransports(true);
      const tcp = await sumAndTransports(false);
      // Rank r has ring neighbours r ± 1 and XOR partner r ^ 2: 3 links each on 4 ranks.
      for (const [, transports] of unix) expect(transports).toEqual(['unix', 'unix', 'unix']);
      for (const [, transports] of tcp) expect(transports).toEqual(['tcp', 'tcp', 'tcp']);
      const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      const first = bytes((unix[0] as [Float32Array, Transport[]])[0]);
      for (const [sum] of [...unix, ...tcp]) expect(bytes(sum).equals(first)).toBe(true);
    },
  );

  it('fall back to TCP when the peer’s Unix socket cannot be reached', async () => {
    const creds = { token: TOKEN, jobId: 'thor-ts', tag: jobTag('thor-ts') };
    const accepted: Transport[] = [];
    const peer = await listen(
      { host: '127.0.0.1', port: 0 },
      creds,
      { maxFrameBytes: 1 << 20, timeoutMs: 5_000, log: () => undefined, where: 'rank 1' },
      (_wire, _rank, _role, transport) => accepted.push(transport),
    );
    const logs: string[] = [];
    const params: JoinParams = {
      rank: 0,
      worldSize: 2,
      coordinator: 'unused',
      creds,
      listenHost: '127.0.0.1',
      advertiseHost: '127.0.0.1',
      port: 0,
      unixSockets: true,
      timeoutMs: 5_000,
      maxFrameBytes: 1 << 20,
      log: (l) => logs.push(l),
    };
    // The same machine as this process, so the Unix socket is tried first, but nothing is there.
    const local = { machine: machineIdentity() ?? '', path: '/nonexistent/thor-ts/rank1.sock' };
    try {
      const link = await dialPeer(params, 1, ['127.0.0.1', peer.port, local]);
      expect(link.transport).toBe('tcp');
      link.close();
      await expect.poll(() => accepted).toEqual(['tcp']);
      if (linux) expect(logs.join('\n')).toMatch(/cannot reach rank 1 at ws\+unix:.*TCP address/);
    } finally {
      await peer.close();
    }
  });

  it.skipIf(!linux)(
    `stay on TCP when no socket directory can be made (TMPDIR unwritable)${linux ? '' : ' (skipped: needs Linux’s /proc to tell one machine)'}`,
    async () => {
      const before = process.env.TMPDIR;
      process.env.TMPDIR = '/nonexistent/thor-ts-tmp';
      try {
        const out = await withRing(2, async (ring) => [...ring.transports.values()]);
        for (const transports of out) expect(transports).toEqual(['tcp']);
      } finally {
        if (before === undefined) delete process.env.TMPDIR;
        else process.env.TMPDIR = before;
      }
    },
  );

  it('are switched off with THOR_TS_UNIX_SOCKETS=0; another value is refused by name', async () => {
    const env = {
      RANK: '0',
      WORLD_SIZE: '1',
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: '1',
      THOR_TS_JOB_TOKEN: TOKEN,
      THOR_TS_UNIX_SOCKETS: 'no',
    };
    await expect(joinRingFromEnv({}, env)).rejects.toThrow(
      'expected THOR_TS_UNIX_SOCKETS to be 0 or 1, got "no"',
    );
  });
});
