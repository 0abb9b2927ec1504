import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';

import { joinRing, RingError, startCoordinator } from '../dist/index.js';
import { TOKEN, withRing } from './with_ring.js';

const WORKER = fileURLToPath(new URL('./fixtures/worker.mjs', import.meta.url));

describe('a job that goes wrong fails loudly on every rank', () => {
  it('names both lengths when one rank all-reduces a different length', async () => {
    // Rank 2 passes 11 elements, the others 10: every rank must reject, none may hang or sum.
    const out = await withRing(4, (ring) =>
      ring.allReduce(new Float32Array(ring.rank === 2 ? 11 : 10)).then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    for (const e of out) {
      expect(e).toBeInstanceOf(RingError);
      expect((e as Error).message).toMatch(/allReduce #0/);
      expect((e as Error).message).toMatch(/length 1[01] vs 1[01]/);
      expect((e as Error).message).toMatch(/rank 2/);
    }
  });

  it('rejects a worker with the wrong token, and logs it', async () => {
    const logs: string[] = [];
    const c = await startCoordinator({ worldSize: 2, token: TOKEN, log: (l) => logs.push(l) });
    try {
      await expect(
        joinRing({
          rank: 1,
          worldSize: 2,
          coordinator: c.address,
          token: 'wrong',
          timeoutMs: 5000,
        }),
      ).rejects.toThrow(/rank 1 cannot join the coordinator at .*: connection closed .*4001/);
      expect(logs.join('\n')).toMatch(
        /rejected a connection .*the worker claiming rank 1 has the wrong token/,
      );
    } finally {
      await c.close();
    }
  });

  it('rejects text, malformed and oversized frames before any handshake, and logs them', async () => {
    const logs: string[] = [];
    const c = await startCoordinator({ worldSize: 2, token: TOKEN, log: (l) => logs.push(l) });
    const send = (data: string | Buffer): Promise<number> =>
      new Promise((resolve) => {
        const ws = new WebSocket(`ws://${c.address}`);
        ws.on('error', () => undefined);
        ws.on('message', () => ws.send(data)); // answer the challenge with junk
        ws.on('close', (code) => resolve(code));
      });
    try {
      expect(await send('hello')).toBe(4001);
      expect(await send(Buffer.alloc(40, 7))).toBe(4001);
      // Over the 4 KiB a connection may send before it has proved the token (a hello needs ~300 B).
      expect(await send(Buffer.alloc(8 << 10))).toBe(1009);
      const text = logs.join('\n');
      expect(text).toMatch(/expected a binary frame, got text/);
      expect(text).toMatch(/expected magic 0x31524854, got 0x7070707/);
    } finally {
      await c.close();
    }
  });

  it('caps connections that have not proved the token, logs them at a bounded rate, and still takes a worker', async () => {
    const logs: string[] = [];
    const c = await startCoordinator({ worldSize: 2, token: TOKEN, log: (l) => logs.push(l) });
    // 80 connections that open and say nothing: 64 may wait for their hello, the rest are closed.
    const sockets = Array.from({ length: 80 }, () => new WebSocket(`ws://${c.address}`));
    try {
      const closedEarly = await Promise.all(
        sockets.map(
          (ws) =>
            new Promise<boolean>((resolve) => {
              ws.on('error', () => undefined);
              ws.on('close', () => resolve(true));
              setTimeout(() => resolve(false), 2000).unref();
            }),
        ),
      );
      expect(closedEarly.filter(Boolean).length).toBe(16);
      expect(logs.filter((l) => l.includes('refused a connection')).length).toBeLessThanOrEqual(5);
      expect(logs.join('\n')).toMatch(
        /coordinator refused a connection from 127\.0\.0\.1:\d+: 64 connections are already proving the token/,
      );
      for (const ws of sockets) ws.terminate();
      // Their slots free up as they close: a real worker joins.
      await new Promise((r) => setTimeout(r, 200));
      const rings = await Promise.all(
        [0, 1].map((rank) =>
          joinRing({
            rank,
            worldSize: 2,
            coordinator: c.address,
            token: TOKEN,
            log: () => undefined,
          }),
        ),
      );
      await Promise.all(rings.map((r) => r.close()));
    } finally {
      for (const ws of sockets) ws.terminate();
      await c.close();
    }
  });

  it('refuses a worker of another job (the frames carry another job tag)', async () => {
    const c = await startCoordinator({
      worldSize: 2,
      token: TOKEN,
      jobId: 'job-a',
      log: () => undefined,
    });
    try {
      await expect(
        joinRing({
          rank: 0,
          worldSize: 2,
          coordinator: c.address,
          token: TOKEN,
          jobId: 'job-b',
          log: () => undefined,
        }),
      ).rejects.toThrow(/frame for another job: expected job tag 0x[0-9a-f]+, got 0x[0-9a-f]+/);
    } finally {
      await c.close();
    }
  });

  const job = async (
    signal: 'SIGKILL' | 'SIGSTOP',
    transport: 'unix' | 'tcp' = 'unix',
  ): Promise<{ code: number | null; err: string }[]> => {
    const n = 4;
    const c = await startCoordinator({
      worldSize: n,
      token: TOKEN,
      timeoutMs: 3000,
      log: () => undefined,
    });
    const procs = Array.from({ length: n }, (_, r) =>
      spawn(process.execPath, [WORKER, String(r), String(n), c.address, '3000', transport], {
        stdio: 'pipe',
      }),
    );
    const victim = procs[2]!;
    try {
      // Once rank 2 finished a round, stop it; the other three must exit non-zero naming it.
      await new Promise<void>((resolve, reject) => {
        victim.stdout.once('data', () => resolve());
        victim.once('exit', (code) =>
          reject(new Error(`rank 2 exited (code ${code}) before finishing a round`)),
        );
      });
      victim.kill(signal);
      return await Promise.all(
        procs
          .filter((p) => p !== victim)
          .map(
            (p) =>
              new Promise<{ code: number | null; err: string }>((resolve) => {
                let err = '';
                p.stderr.on('data', (d: Buffer) => (err += d.toString()));
                p.on('exit', (code) => resolve({ code, err }));
              }),
          ),
      );
    } finally {
      for (const p of procs) p.kill('SIGKILL');
      await c.close();
    }
  };

  it.each(['unix', 'tcp'] as const)(
    'makes every other worker exit non-zero naming a killed rank (links on %s)',
    async (transport) => {
      for (const { code, err } of await job('SIGKILL', transport)) {
        expect(code).toBe(1);
        expect(err).toMatch(/rank 2 (left the job|closed its connection)/);
        expect(err).toMatch(/allReduce #\d+/);
      }
    },
  );

  it('makes every other worker exit non-zero naming a stalled rank (SIGSTOP, 3 s deadline)', async () => {
    for (const { code, err } of await job('SIGSTOP')) {
      expect(code).toBe(1);
      expect(err, err).toMatch(/rank 2 (stopped responding|has not answered heartbeats)/);
    }
  });
});
