import { joinRing, type Ring, type RingOptions, startCoordinator } from '../dist/index.js';

/** Deterministic values in [-1, 1) from a seed (a 32-bit LCG), shared with the worker processes. */
export { values } from './fixtures/values.mjs';

export const TOKEN = 'test-token-0123456789';

/**
 * Starts a coordinator and `n` workers on loopback in this process, runs `fn` on every rank at
 * once (with the coordinator's address), closes everything and returns each rank's result. Log
 * lines are collected in `logs`.
 */
export async function withRing<T>(
  n: number,
  fn: (ring: Ring, coordinator: string) => Promise<T>,
  opts: Partial<RingOptions> & { logs?: string[] } = {},
): Promise<T[]> {
  const logs = opts.logs ?? [];
  const coordinator = await startCoordinator({
    worldSize: n,
    token: TOKEN,
    log: (l) => logs.push(`coordinator: ${l}`),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  });
  const rings: Ring[] = [];
  try {
    const joined = await Promise.all(
      Array.from({ length: n }, (_, rank) =>
        joinRing({
          rank,
          worldSize: n,
          coordinator: coordinator.address,
          token: TOKEN,
          log: (l) => logs.push(`rank ${rank}: ${l}`),
          ...opts,
        }),
      ),
    );
    rings.push(...joined);
    return await Promise.all(rings.map((r) => fn(r, coordinator.address)));
  } finally {
    await Promise.all(rings.map((r) => r.close()));
    await coordinator.close();
  }
}
