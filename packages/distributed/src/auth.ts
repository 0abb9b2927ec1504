/**
 * Job-token challenge–response over a fresh WebSocket. The token never crosses the wire: each
 * side proves it knows the token with an HMAC-SHA256 over both sides' random nonces.
 *
 *   server → client  challenge {nonce: S}
 *   client → server  hello     {rank, role, nonce: C, mac: HMAC(token, "client|job|role|rank|S|C")}
 *   server → client  welcome   {mac: HMAC(token, "server|job|role|rank|C|S")}
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

import { decodeControl, decodeHeader, encodeControl, FrameKind, kindName } from './frame.js';
import type { Wire } from './wire.js';

export interface Credentials {
  token: string;
  jobId: string;
  tag: number;
}

/**
 * Who opened a connection: a worker joining the coordinator, a worker dialling a peer, or a
 * process that only reads the initial weights from the coordinator (e.g. a restarted worker).
 */
export type Role = 'worker' | 'peer' | 'reader';

function mac(c: Credentials, parts: (string | number)[]): string {
  return createHmac('sha256', c.token)
    .update([c.jobId, ...parts].join('|'))
    .digest('hex');
}

function sameMac(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

async function nextControl(
  wire: Wire,
  c: Credentials,
  kind: FrameKind,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const m = await wire.take(timeoutMs, `a ${kindName(kind)} frame`);
  if (!m.isBinary) throw new Error('malformed frame: expected a binary frame, got text');
  const h = decodeHeader(m.head, c.tag);
  if (h.kind !== kind) {
    throw new Error(`expected a ${kindName(kind)} frame, got ${kindName(h.kind)}`);
  }
  return decodeControl(m.payload);
}

/** The accepting side. Resolves with the caller's rank and role once it proved the token. */
export async function acceptHandshake(
  wire: Wire,
  c: Credentials,
  timeoutMs: number,
): Promise<{ rank: number; role: Role }> {
  const nonceS = randomBytes(32).toString('hex');
  wire.send(encodeControl(c.tag, FrameKind.challenge, { nonce: nonceS }));
  const hello = await nextControl(wire, c, FrameKind.hello, timeoutMs);
  const { rank, role, nonce, mac: theirs } = hello;
  if (
    typeof rank !== 'number' ||
    !Number.isInteger(rank) ||
    rank < 0 ||
    (role !== 'worker' && role !== 'peer' && role !== 'reader') ||
    typeof nonce !== 'string' ||
    typeof theirs !== 'string'
  ) {
    throw new Error('malformed hello frame: expected {rank, role, nonce, mac}');
  }
  if (!sameMac(theirs, mac(c, ['client', role, rank, nonceS, nonce]))) {
    throw new Error(`authentication failed: the ${role} claiming rank ${rank} has the wrong token`);
  }
  wire.send(
    encodeControl(c.tag, FrameKind.welcome, { mac: mac(c, ['server', role, rank, nonce, nonceS]) }),
  );
  return { rank, role };
}

/** The dialling side: answers the challenge and checks that the other side knows the token too. */
export async function offerHandshake(
  wire: Wire,
  c: Credentials,
  rank: number,
  role: Role,
  timeoutMs: number,
): Promise<void> {
  const challenge = await nextControl(wire, c, FrameKind.challenge, timeoutMs);
  const nonceS = challenge.nonce;
  if (typeof nonceS !== 'string') throw new Error('malformed challenge frame: expected {nonce}');
  const nonceC = randomBytes(32).toString('hex');
  wire.send(
    encodeControl(c.tag, FrameKind.hello, {
      rank,
      role,
      nonce: nonceC,
      mac: mac(c, ['client', role, rank, nonceS, nonceC]),
    }),
  );
  const welcome = await nextControl(wire, c, FrameKind.welcome, timeoutMs);
  if (
    typeof welcome.mac !== 'string' ||
    !sameMac(welcome.mac, mac(c, ['server', role, rank, nonceC, nonceS]))
  ) {
    throw new Error('authentication failed: the server does not know the job token');
  }
}
