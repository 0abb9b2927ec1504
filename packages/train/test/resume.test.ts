import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { initBackend } from '@thor-ts/backend';
import { writeSyntheticImageNet } from '@thor-ts/data';
import { joinRing, startCoordinator, type Ring } from '@thor-ts/distributed';
import { readSafetensors } from '@thor-ts/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildModel, presets, train, type TrainConfig, type TrainOptions } from '../dist/index.js';

let dir: string;
let data: string;

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  dir = await mkdtemp(join(tmpdir(), 'thor-ts-resume-'));
  data = join(dir, 'data');
  await writeSyntheticImageNet(data, {
    classes: 4,
    trainPerClass: 8,
    valPerClass: 3,
    width: 16,
    height: 16,
  });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A tiny THOR run: 32 images, batch 8 over the ring, 4 steps an epoch, a refresh every 3 steps. */
function tiny(out: string, overrides: Partial<TrainConfig> = {}): TrainConfig {
  const base = presets['fashion-mnist-thor'] as TrainConfig;
  return {
    ...base,
    data,
    out: join(dir, out),
    model: { arch: 'resnetLight', classes: 4, layers: [1, 1, 1], widths: [4, 8, 8] },
    epochs: 2,
    batchSize: 8,
    thor: { ...base.thor, frequency: 3 },
    normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    ...overrides,
  };
}

/** `train` on every rank of an in-process ring of `n`. */
async function trainOnRing(
  n: number,
  config: TrainConfig,
  options: (rank: number) => TrainOptions = () => ({}),
) {
  const token = 'resume-test-token';
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
      rings.map((r) => train(config, r, { log: () => undefined, ...options(r.rank) })),
    );
  } finally {
    await Promise.all(rings.map((r) => r.close()));
    await coordinator.close();
  }
}

async function parameters(out: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(join(out, 'weights.safetensors'));
  return new Map(
    [...tensors]
      .filter(([k]) => !/running_|num_batches/.test(k))
      .map(([k, t]) => [k, t.data as Float32Array]),
  );
}

describe('train', () => {
  it('stops on its signal after the step under way, on every rank, and resumes exactly', async () => {
    const whole = tiny('whole');
    const [a] = await trainOnRing(2, whole);
    expect(a!.stopped).toBe(false);
    expect(a!.history.map((m) => m.step)).toEqual([4, 8]);
    expect(a!.history[1]!.refreshes).toBe(3); // steps 0, 3 and 6

    const split = tiny('split');
    // Rank 1 alone is told to stop after step 5 (epoch 2, step 1 of 4): both stop after step 6.
    const controller = new AbortController();
    const first = await trainOnRing(2, split, (rank) => ({
      ...(rank === 1 ? { signal: controller.signal } : {}),
      onStep: (step) => step === 5 && rank === 1 && controller.abort(),
    }));
    expect(first.map((r) => [r.stopped, r.step])).toEqual([
      [true, 6],
      [true, 6],
    ]);
    expect(first[0]!.history).toHaveLength(1);
    const second = await trainOnRing(2, split);
    expect(second[0]).toMatchObject({ stopped: false, step: 8 });
    expect(second[0]!.history.map((m) => m.epoch)).toEqual([1, 2]);
    expect(second[0]!.history[1]!.refreshes).toBe(3);

    // Same data, same updates, same momentum and inverses: the same weights, bit for bit.
    const [wa, wb] = [await parameters(whole.out), await parameters(split.out)];
    expect([...wb.keys()]).toEqual([...wa.keys()]);
    for (const [k, v] of wa)
      expect(Buffer.from(wb.get(k)!.buffer).equals(Buffer.from(v.buffer)), k).toBe(true);
    expect(second[0]!.history[1]!.top1).toBeCloseTo(a!.history[1]!.top1, 5);
  }, 600_000);

  it('accumulates micro-batches into one step', async () => {
    const [plain] = await trainOnRing(2, tiny('plain', { optimizer: 'sgd', epochs: 1 }));
    const [accumulated] = await trainOnRing(
      2,
      tiny('accumulated', { optimizer: 'sgd', epochs: 1, accumulate: 2 }),
    );
    // The same 4 steps of 8 images, each worker's 4 seen as 2 + 2 (batch norm then sees 2 at a time).
    expect(accumulated!.history[0]!.step).toBe(4);
    expect(plain!.history[0]!.step).toBe(4);
    // Averaged, not summed: the weights move as far as without accumulation (a sum would move
    // them about twice as far), and not the same way (batch norm sees 2 images at a time).
    const model = buildModel(tiny('init'));
    const init = new Map([...model.parameters()].map(([k, e]) => [k, e.variable!.dataSync()]));
    model.dispose();
    const moved = (w: Map<string, Float32Array>) => {
      let sq = 0;
      for (const [k, v] of init) v.forEach((x, i) => (sq += ((w.get(k)![i] as number) - x) ** 2));
      return Math.sqrt(sq);
    };
    const plainMoved = moved(await parameters(join(dir, 'plain')));
    const accumulatedMoved = moved(await parameters(join(dir, 'accumulated')));
    expect(accumulatedMoved / plainMoved).toBeGreaterThan(0.8);
    expect(accumulatedMoved / plainMoved).toBeLessThan(1.25);
    expect(accumulatedMoved).not.toBe(plainMoved);
  });

  it('refuses a batch that does not split over workers and micro-batches', async () => {
    await expect(trainOnRing(2, tiny('bad', { batchSize: 6, accumulate: 2 }))).rejects.toThrow(
      "field 'batchSize' (6) must divide by the 2 workers × 2 accumulated micro-batches",
    );
  });
});
