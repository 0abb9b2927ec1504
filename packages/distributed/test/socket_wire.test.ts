import { connect, createServer, type Socket } from 'node:net';

import { afterEach, describe, expect, it } from 'vitest';

import { SocketWire } from '../dist/socket_wire.js';
import type { Message } from '../dist/wire.js';
import { values } from './with_ring.js';

/** A connected loopback TCP pair: [dialled, accepted]. */
async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const dialled = connect(port, '127.0.0.1');
  await new Promise((resolve) => dialled.once('connect', resolve));
  const pair: [Socket, Socket] = [dialled, await accepted];
  server.close();
  return pair;
}

const open: { terminate(): void; destroy?: () => void }[] = [];
afterEach(() => {
  for (const o of open.splice(0)) (o.destroy ?? o.terminate).call(o);
});

/** Two wires over one connection, the dialled socket as the client. */
async function wirePair(maxPayload = 8 << 20): Promise<[SocketWire, SocketWire]> {
  const [a, b] = await socketPair();
  const client = SocketWire.adopt(a, { side: 'client', maxPayload });
  const server = SocketWire.adopt(b, { side: 'server', maxPayload });
  open.push(client, server);
  return [client, server];
}

/** A server wire and a plain socket that writes raw bytes to it, as a misbehaving client would. */
async function rawClient(maxPayload = 1 << 20): Promise<[Socket, SocketWire, string[]]> {
  const [a, b] = await socketPair();
  const server = SocketWire.adopt(b, { side: 'server', maxPayload });
  const errors: string[] = [];
  server.onError((e) => errors.push(e.message));
  open.push(server, { terminate: () => a.destroy() });
  return [a, server, errors];
}

/** Collects `count` messages as copies (the wire reuses its buffers). */
function collect(wire: SocketWire, count: number): Promise<Message[]> {
  return new Promise((resolve, reject) => {
    const got: Message[] = [];
    wire.drainTo({
      message: (m) => {
        got.push({
          head: Buffer.from(m.head),
          payload: Buffer.from(m.payload),
          isBinary: m.isBinary,
        });
        if (got.length === count) resolve(got);
      },
      closed: (code, reason) => reject(new Error(`closed ${code} ${reason}`)),
    });
  });
}

const header = (i: number): Buffer => Buffer.alloc(32, i);

describe('SocketWire: WebSocket frames straight on the socket', () => {
  it('delivers messages of 0 B to 3 MB both ways, in order and byte for byte', async () => {
    const [client, server] = await wirePair();
    // Sizes around every boundary the parser has: the 7-bit, 16-bit and 64-bit length forms,
    // the staging buffer (64 KiB) and the direct-read threshold (4 KiB).
    const sizes = [0, 1, 93, 94, 125, 4096, 65_503, 65_504, 70_000, 3_000_001];
    const payloads = sizes.map((s, i) => Buffer.from(values(Math.ceil(s / 4), i).buffer, 0, s));
    for (const [from, to] of [
      [client, server],
      [server, client],
    ] as const) {
      const got = collect(to, sizes.length);
      payloads.forEach((p, i) => from.send(header(i), p));
      const messages = await got;
      messages.forEach((m, i) => {
        expect(m.isBinary).toBe(true);
        expect(m.head.equals(header(i))).toBe(true);
        expect(m.payload.equals(payloads[i] as Buffer)).toBe(true);
      });
    }
  });

  it('hands over a payload 4-byte aligned, so it reads as a Float32Array in place', async () => {
    const [client, server] = await wirePair();
    const got = collect(server, 2);
    client.send(header(1), new Uint8Array(values(10, 1).buffer));
    client.send(header(2), new Uint8Array(values(300_000, 2).buffer));
    for (const m of await got) expect(m.payload.byteOffset % 4).toBe(0);
  });

  it('receives a large payload straight into the place the sink names, a small one aside', async () => {
    const [client, server] = await wirePair();
    const target = new Float32Array(100_000);
    const asked: [number, number][] = [];
    const got: Message[] = [];
    const done = new Promise<void>((resolve) =>
      server.drainTo({
        place: (head, bytes) => {
          asked.push([head[0] as number, bytes]);
          return head[0] === 1 ? new Uint8Array(target.buffer, 4000, bytes) : undefined;
        },
        message: (m) => {
          got.push({ ...m, payload: Buffer.from(m.payload) });
          if (m.head[0] === 1) {
            // Delivered as a view of the target itself, not a copy of it.
            expect(m.payload.buffer).toBe(target.buffer);
            expect(m.payload.byteOffset).toBe(4000);
          }
          if (got.length === 3) resolve();
        },
        closed: () => undefined,
      }),
    );
    const big = values(90_000, 5);
    client.send(header(1), new Uint8Array(big.buffer));
    client.send(header(2), new Uint8Array(values(90_000, 6).buffer)); // sink declines: own buffer
    client.send(header(3), new Uint8Array(values(100, 7).buffer)); // too small to be asked
    await done;
    expect(asked).toEqual([
      [1, 360_000],
      [2, 360_000],
    ]);
    expect(Buffer.from(target.buffer, 4000, 360_000).equals(Buffer.from(big.buffer))).toBe(true);
    expect(got[1]?.payload.equals(Buffer.from(values(90_000, 6).buffer))).toBe(true);
  });

  it('unmasks a client frame masked with a non-zero key, split into single-byte writes', async () => {
    const [raw, server] = await rawClient();
    const body = Buffer.concat([header(7), Buffer.from('masked payload')]);
    const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
    const masked = Buffer.from(body.map((b, i) => b ^ (key[i % 4] as number)));
    const frame = Buffer.concat([Buffer.from([0x82, 0x80 | body.length]), key, masked]);
    const got = collect(server, 1);
    for (const byte of frame) {
      raw.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const [m] = await got;
    expect(m?.head.equals(header(7))).toBe(true);
    expect(m?.payload.toString()).toBe('masked payload');
  });

  it('refuses an unmasked client frame, a fragment and a frame over the size limit', async () => {
    const cases: [Buffer, RegExp, number][] = [
      [Buffer.from([0x82, 0x01, 0x00]), /expected masked frames from a client/, 1002],
      [Buffer.from([0x02, 0x81, 0, 0, 0, 0, 0]), /expected whole messages, got a fragment/, 1002],
      [Buffer.from([0xc2, 0x80, 0, 0, 0, 0]), /reserved bits set/, 1002],
      [
        Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0]),
        /a frame of 2097152 bytes is over the size limit of 1048576/,
        1009,
      ],
    ];
    for (const [bytes, message, code] of cases) {
      const [raw, server, errors] = await rawClient();
      const reply: Buffer[] = [];
      raw.on('data', (d: Buffer) => reply.push(d));
      const closed = new Promise<number>((resolve) =>
        server.drainTo({ message: () => undefined, closed: (c) => resolve(c) }),
      );
      raw.write(bytes);
      expect(await closed).toBe(code);
      expect(errors.join('\n')).toMatch(message);
      await new Promise((resolve) => raw.once('close', resolve));
      // The server's close frame: opcode 8, unmasked, the status code first.
      const frame = Buffer.concat(reply);
      expect(frame[0]).toBe(0x88);
      expect(frame.readUInt16BE(2)).toBe(code);
    }
  });

  it('reports the remote’s close code and reason, and answers pings', async () => {
    const [client, server] = await wirePair();
    const pong = new Promise<void>((resolve) => client.onPong(resolve));
    client.ping();
    await pong;
    const closed = new Promise<[number, string]>((resolve) =>
      server.drainTo({ message: () => undefined, closed: (c, r) => resolve([c, r]) }),
    );
    client.close(1000, 'done');
    expect(await closed).toEqual([1000, 'done']);
  });
});
