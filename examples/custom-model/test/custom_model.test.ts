import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../train.mjs', import.meta.url));

describe('examples/custom-model --quick', () => {
  it('trains its own VGG with THOR on 2 workers, and its reloaded weights reach the target', async () => {
    // The script exits 1 when the reloaded weights miss the target or disagree with the run's
    // last evaluation: execFile then rejects, and the test fails.
    const { stdout } = await promisify(execFile)(process.execPath, [script, '--quick'], {
      maxBuffer: 1 << 24,
    });
    // Its own 3×3 convolutions and the built-in Linear are preconditioned; the convolutions'
    // biases, the batch norms and the classifier's bias go to SGD alone.
    expect(stdout).toContain(
      'THOR preconditions 4 layers (features.0, features.4, features.8, classifier); ' +
        'momentum SGD alone trains 10 parameters (features.0.bias, features.1.weight, features.1.bias, features.4.bias, …, features.9.bias, classifier.bias)',
    );
    // Stopped in its second epoch, then resumed from its checkpoint.
    expect(stdout).toMatch(/\[rank 0\] stopped after step 39\n/);
    expect(stdout).toMatch(
      /\[rank 0\] resuming from .*last\.ckpt: epoch 2, step 8\/31 of it \(39 in all\)/,
    );
    const m =
      /reloaded weights: top-1 ([\d.]+)% on 2000 val images \(the run's last evaluation: ([\d.]+)%/.exec(
        stdout,
      );
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(70);
    expect(Math.abs(Number(m?.[1]) - Number(m?.[2]))).toBeLessThanOrEqual(0.05);
  }, 600_000);
});
