import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '@thor-ts/backend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  basicBlock,
  bottleneck,
  buildArch,
  loadWeights,
  readSafetensors,
  resnet,
  saveWeights,
  stateDict,
  writeSafetensors,
  type BlockKind,
  type TensorToStore,
  type ResNet,
} from '../dist/index.js';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
let dir: string;

// The models of fixtures/make_torchvision_fixture.py, built here from the same description.
const tiny = (block: BlockKind, widths: number[]) =>
  resnet(block, [1, 1, 1, 1], { widths, classes: 10, stem: { width: 8 } });
const cases: [string, () => ResNet][] = [
  ['resnet_basic_tiny', () => tiny(basicBlock, [8, 16, 32, 64])],
  ['resnet_bottleneck_tiny', () => tiny(bottleneck, [4, 8, 16, 32])],
];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'thor-ts-weights-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each(['wasm', 'cpu'] as const)('torchvision safetensors weights on %s', (backend) => {
  beforeAll(async () => {
    await initBackend({ backend });
  });

  it.each(cases)('%s loads and gives torchvision’s eval-mode logits', async (name, make) => {
    const model = make();
    const report = await loadWeights(model, join(fixtures, `${name}.safetensors`));
    expect(report.missing).toEqual([]);
    expect(report.unexpected).toEqual([]);
    const io = (await readSafetensors(join(fixtures, `${name}.io.safetensors`))).tensors;
    const input = io.get('input_nchw');
    const expected = io.get('logits');
    // PyTorch's NCHW input, transposed to NHWC.
    const x = tf.tidy(() => tf.transpose(tf.tensor(input!.data, input!.shape), [0, 2, 3, 1]));
    const logits = model.predict(x);
    const got = logits.dataSync();
    const want = expected!.data;
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < want.length; i++) {
      worst = Math.max(worst, Math.abs((got[i] as number) - (want[i] as number)));
      scale = Math.max(scale, Math.abs(want[i] as number));
    }
    expect(worst / scale).toBeLessThan(1e-4);
    tf.dispose([x, logits]);
    model.dispose();
  });
});

describe('weights files', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
  });

  it('export the same tensors torchvision wrote (OIHW, [out, in], int64 counters)', async () => {
    const model = tiny(basicBlock, [8, 16, 32, 64]);
    await loadWeights(model, join(fixtures, 'resnet_basic_tiny.safetensors'));
    const out = join(dir, 'roundtrip.safetensors');
    await saveWeights(model, out);
    const original = (await readSafetensors(join(fixtures, 'resnet_basic_tiny.safetensors')))
      .tensors;
    const written = (await readSafetensors(out)).tensors;
    expect([...written.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [key, t] of original) {
      expect(written.get(key)?.dtype, key).toBe(t.dtype);
      expect(written.get(key)?.shape, key).toEqual(t.shape);
      expect(Array.from(written.get(key)?.data ?? []), key).toEqual(Array.from(t.data));
    }
    expect(stateDict(model).get('layer1.0.bn1.num_batches_tracked')).toMatchObject({
      dtype: 'I64',
      shape: [],
    });
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
    model.dispose();
  });

  it('reject a mismatched file listing missing, unexpected and mis-shaped keys, loading nothing', async () => {
    const model = tiny(basicBlock, [8, 16, 32, 64]);
    const before = model.state.get('conv1.weight')?.variable?.dataSync().slice();
    // The basic-block file with one key dropped, one added and one reshaped.
    const { tensors } = await readSafetensors(join(fixtures, 'resnet_basic_tiny.safetensors'));
    const edited = new Map<string, TensorToStore>();
    for (const [k, t] of tensors) {
      if (k === 'layer2.0.bn1.running_var') continue;
      edited.set(k, {
        dtype: t.dtype as 'F32' | 'I64',
        shape: k === 'fc.bias' ? [2, 5] : t.shape,
        data: t.data,
      });
    }
    edited.set('layer5.0.conv1.weight', { dtype: 'F32', shape: [1], data: [0] });
    const file = join(dir, 'mismatched.safetensors');
    await writeSafetensors(file, edited);
    const error = await loadWeights(model, file).catch((e: Error) => e);
    expect((error as Error).message).toBe(
      `${file}: does not match the model (nothing was loaded)\n` +
        '  missing (1): layer2.0.bn1.running_var\n' +
        '  unexpected (1): layer5.0.conv1.weight\n' +
        '  mis-shaped (1): fc.bias expected [10] found [2,5]',
    );
    expect(Array.from(model.state.get('conv1.weight')?.variable?.dataSync() ?? [])).toEqual(
      Array.from(before ?? []),
    );
    // Not strict: what matches is loaded, the rest reported.
    const report = await loadWeights(model, file, { strict: false });
    expect(report.loaded).toContain('conv1.weight');
    expect(report.loaded).not.toContain('fc.bias');
    expect(report.missing).toEqual(['layer2.0.bn1.running_var']);
    expect(report.unexpected).toEqual(['layer5.0.conv1.weight']);
    expect(report.misshaped).toEqual([{ key: 'fc.bias', expected: [10], found: [2, 5] }]);
    expect(Array.from(model.state.get('conv1.weight')?.variable?.dataSync() ?? [])).not.toEqual(
      Array.from(before ?? []),
    );
    model.dispose();
  });

  it('record the architecture and batch norm constants in the metadata, and name a wrong architecture', async () => {
    const light = buildArch('resnetLight', {
      classes: 3,
      seed: 1,
      layers: [1, 1, 1],
      widths: [4, 8, 8],
    });
    const file = join(dir, 'light.safetensors');
    await saveWeights(light, file);
    const { metadata } = await readSafetensors(file);
    expect(metadata).toEqual({
      arch: 'resnetLight',
      arch_options: JSON.stringify({ classes: 3, seed: 1, layers: [1, 1, 1], widths: [4, 8, 8] }),
      batch_norm_eps: '0.00001',
      batch_norm_momentum: '0.1',
      format: 'pt',
    });
    const cifar = buildArch('cifarResnet20', { classes: 3, seed: 1, batchNorm: 'mindspore' });
    const other = join(dir, 'cifar.safetensors');
    await saveWeights(cifar, other);
    expect((await readSafetensors(other)).metadata['batch_norm_eps']).toBe('0.0001');
    await expect(loadWeights(light, other)).rejects.toThrow(
      `${other} (weights of a cifarResnet20, the model is a resnetLight): does not match the model`,
    );
    light.dispose();
    cifar.dispose();
  });

  it('reject a truncated file naming it', async () => {
    const bytes = await readFile(join(fixtures, 'resnet_basic_tiny.safetensors'));
    const cut = join(dir, 'truncated.safetensors');
    await writeFile(cut, bytes.subarray(0, bytes.length - 1000));
    const model = tiny(basicBlock, [8, 16, 32, 64]);
    await expect(loadWeights(model, cut)).rejects.toThrow(
      new RegExp(
        `${cut}: not a valid safetensors file: 'fc\\.\\w+' ends at byte \\d+ of \\d+ data bytes \\(truncated\\?\\)`,
      ),
    );
    await copyFile(join(fixtures, 'resnet_basic_tiny.safetensors'), join(dir, 'ok.safetensors'));
    await expect(loadWeights(model, join(dir, 'ok.safetensors'))).resolves.toMatchObject({
      missing: [],
    });
    model.dispose();
  });
});
