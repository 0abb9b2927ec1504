import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { openImageNet, writeSyntheticImageNet, type Batch } from '@thor-ts/data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildLoader, buildTransforms, EvalBatches } from '../dist/index.js';
import { smallSgd } from './configs.js';

let dir: string;
const synthetic = { classes: 3, trainPerClass: 1, valPerClass: 5, width: 12, height: 12 };
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'thor-ts-evalbatches-'));
  await writeSyntheticImageNet(dir, synthetic);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Rank 1 of 2's val loader, batches of 4 (15 images: 8 on this rank, two batches). */
async function valLoader() {
  const config = { ...smallSgd(), data: dir };
  const set = await openImageNet(dir, { split: 'val' });
  return buildLoader(
    config,
    set,
    4,
    buildTransforms(config).eval,
    { rank: 1, worldSize: 2 },
    false,
  );
}

async function pass(source: EvalBatches): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of source.epoch(0)) out.push(b);
  return out;
}

describe('EvalBatches', () => {
  it("gives every pass the first pass's batches, and reads the files only once", async () => {
    const loader = await valLoader();
    const source = new EvalBatches(loader);
    const first = await pass(source);
    expect(source.inMemory).toBe(true);
    // With the files gone, a pass that read them would skip all 8 images.
    await rm(join(dir, 'val'), { recursive: true });
    const second = await pass(source);
    await writeSyntheticImageNet(dir, synthetic);
    // PyTorch's unshuffled DistributedSampler: 15 images padded to 16, rank 1 takes the odd ones.
    expect(second.map((b) => Array.from(b.indices))).toEqual([
      [1, 3, 5, 7],
      [9, 11, 13, 0],
    ]);
    expect(second).toEqual(first);
  });

  it('streams every pass when the batches do not fit its budget', async () => {
    // Two batches of 4 images of 12×12×3 float32 are 3456 bytes each: a budget of one keeps none.
    const source = new EvalBatches(await valLoader(), 3456);
    await pass(source);
    expect(source.inMemory).toBe(false);
    const again = await pass(source);
    expect(again.length).toBe(2);
    expect(source.inMemory).toBe(false);
  });

  it('keeps nothing from a pass left early', async () => {
    const source = new EvalBatches(await valLoader());
    for await (const b of source.epoch(0)) {
      expect(b.shape[0]).toBe(4);
      break;
    }
    expect(source.inMemory).toBe(false);
  });
});
