import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../train.mjs', import.meta.url));

describe('examples/minimal --quick', () => {
  it('trains a ResNet with THOR on 2 workers and reaches its stated top-1', async () => {
    // The script exits 1 when it misses its target: execFile then rejects, and the test fails.
    const { stdout } = await promisify(execFile)(process.execPath, [script, '--quick'], {
      maxBuffer: 1 << 24,
    });
    // ResNet-8: 9 convolutions and the classifier preconditioned; 9 batch norms' weights and biases
    // and the classifier's bias to SGD alone.
    expect(stdout).toContain('[rank 0] THOR: 10 layers preconditioned, 19 to SGD');
    const losses = [...stdout.matchAll(/epoch (\d)\/2: train loss ([\d.]+)/g)].map((m) =>
      Number(m[2]),
    );
    expect(losses).toHaveLength(2);
    expect(losses[1]).toBeLessThan(losses[0] as number);
    const top1 = Number(/top-1 ([\d.]+)% on 2000 val images/.exec(stdout)?.[1]);
    expect(top1).toBeGreaterThanOrEqual(70);
  }, 600_000);
});
