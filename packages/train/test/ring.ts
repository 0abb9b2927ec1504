import { joinRing, startCoordinator, type Ring } from '@thor-ts/distributed';

import { Progress, train, type TrainConfig, type TrainOptions } from '../dist/index.js';

/** `train` on every rank of an in-process ring of `n`, quietly; resolves with each rank's result. */
export async function trainOnRing(
  n: number,
  config: TrainConfig,
  options: (rank: number) => TrainOptions = () => ({}),
) {
  const token = 'train-test-token';
  const coordinator = await startCoordinator({ worldSize: n, token, log: () => undefined });
  const rings: Ring[] = await Promise.all(
    Array.from({ length: n }, (_, rank) =>
      joinRing({
        rank,
        worldSize: n,
        coordinator: coordinator.address,
        token,
        log: () => undefined,
      }),
    ),
  );
  try {
    return await Promise.all(
      rings.map((r) =>
        train(config, r, {
          log: () => undefined,
          progress: new Progress('none', () => undefined),
          ...options(r.rank),
        }),
      ),
    );
  } finally {
    await Promise.all(rings.map((r) => r.close()));
    await coordinator.close();
  }
}
