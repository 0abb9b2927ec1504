import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';

import { describe, expect, it } from 'vitest';

import { runNode } from './run_node.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const entry = pathToFileURL(join(packageDir, 'dist', 'index.js')).href;
const tfjsCore = pathToFileURL(
  createRequire(import.meta.url).resolve('@tensorflow/tfjs-core'),
).href;

// The probe: train-step pieces that fail without the gradients and the wasm filter-gradient kernel.
const probe = (importFrom: string, options = '', core = tfjsCore) => `
import * as tf from '${core}';
import { initBackend } from '${importFrom}';
const r = await initBackend(${options});
const x = tf.ones([1, 5, 5, 2]);
const w = tf.ones([3, 3, 2, 4]);
const [dx, dw] = tf.grads((a, b) => tf.sum(tf.conv2d(a, b, 1, 'same')))([x, w]);
console.log(JSON.stringify({ backend: tf.getBackend(), simd: r.simd, kernels: r.wasmKernels,
  dx: Array.from(dx.dataSync().slice(0, 3)), dw: Array.from(dw.dataSync().slice(0, 2)) }));
`;

describe('initBackend', () => {
  it('changes no tfjs state on import: no backend, kernel or gradient is registered', async () => {
    const out = await runNode(
      `import * as tf from '@tensorflow/tfjs-core';
       await import('${entry}');
       console.log(JSON.stringify({
         backends: Object.keys(tf.engine().registryFactory),
         wasmKernels: tf.getKernelsForBackend('wasm').length,
         conv2dGradient: tf.getGradient('Conv2D') !== undefined,
       }));`,
      packageDir,
    );
    expect(JSON.parse(out)).toEqual({ backends: [], wasmKernels: 0, conv2dGradient: false });
  });

  it('trains a conv on wasm by default, from a working directory outside the package', async () => {
    // Summing a 3×3 'same' conv of ones: the corner of dx sees 4 taps × 4 filters, the centre 9 × 4;
    // the filter's corner tap sees 4 × 4 = 16 input positions per channel, its centre 25.
    const cwd = await mkdtemp(join(tmpdir(), 'thor-ts-cwd-'));
    try {
      const out = JSON.parse(await runNode(probe(entry), cwd));
      expect(out).toEqual({
        backend: 'wasm',
        simd: true,
        kernels: [
          'Conv2D',
          'Conv2DBackpropInput',
          'Conv2DBackpropFilter',
          'BatchMatMul',
          'MaxPoolGrad',
          'ThorBatchNormTrain',
          'ThorBatchNormReluTrain',
          'ThorBatchNormTrainGrad',
          'ThorReluGrad',
          'ThorAddRelu',
          'Identity',
        ],
        dx: [16, 16, 24],
        dw: [16, 16],
      });
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });

  it("leaves the process's own error handling alone: an uncaught error reaches its handler", async () => {
    // tfjs-backend-wasm's emscripten glue adds handlers that rethrow, so without their removal the
    // process dies with exit code 7 and a stack trace before its own handler runs.
    const out = await runNode(
      `import { initBackend } from '${entry}';
       const before = process.listeners('uncaughtException').length;
       await initBackend();
       const after = process.listeners('uncaughtException').length;
       process.on('uncaughtException', (e) => { console.log(JSON.stringify({ before, after, caught: e.message })); process.exit(0); });
       setTimeout(() => { throw new Error('boom'); }, 0);`,
      packageDir,
    );
    expect(JSON.parse(out)).toEqual({ before: 0, after: 0, caught: 'boom' });
  });

  it('trains on cpu when asked', async () => {
    const out = JSON.parse(await runNode(probe(entry, "{ backend: 'cpu' }"), packageDir));
    expect(out).toMatchObject({ backend: 'cpu', simd: false, kernels: [], dx: [16, 16, 24] });
  });

  it('works from an installed copy of the package (npm pack, then npm install)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'thor-ts-install-'));
    const sh = promisify(execFile);
    try {
      const { stdout } = await sh('npm', ['pack', packageDir, '--pack-destination', dir], {
        cwd: dir,
      });
      const tarball = stdout.trim().split('\n').pop() as string;
      await writeFile(join(dir, 'package.json'), '{"name":"probe","private":true,"type":"module"}');
      await sh(
        'npm',
        [
          'install',
          '--prefer-offline',
          '--no-audit',
          '--no-fund',
          `./${tarball}`,
          '@tensorflow/tfjs-core@4.22.0',
        ],
        { cwd: dir },
      );
      const out = JSON.parse(
        await runNode(probe('@thor-ts/backend', '', '@tensorflow/tfjs-core'), dir),
      );
      expect(out).toMatchObject({ backend: 'wasm', dx: [16, 16, 24], dw: [16, 16] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names the missing package when tfjs-node is not installed', async () => {
    const code = `
      import { initBackend } from '${entry}';
      try { await initBackend({ backend: 'tensorflow' }); console.log('no error'); }
      catch (e) { console.log(e.message); }`;
    const out = await runNode(code, packageDir);
    let installed = true;
    try {
      await runNode(`await import('@tensorflow/tfjs-node')`, packageDir);
    } catch {
      installed = false;
    }
    if (installed) expect(out).toContain('no error');
    else
      expect(out).toMatch(
        /backend 'tensorflow' needs @tensorflow\/tfjs-node, which is not installed: npm install @tensorflow\/tfjs-node@4\.22\.0/,
      );
  });

  it('rejects an unknown backend naming the choices', async () => {
    const code = `
      import { initBackend } from '${entry}';
      try { await initBackend({ backend: 'webgpu' }); } catch (e) { console.log(e.message); }`;
    expect(await runNode(code, packageDir)).toMatch(
      /expected backend to be one of wasm, cpu, tensorflow, found 'webgpu'/,
    );
  });

  it('is idempotent: a second call registers nothing new and keeps training', async () => {
    const code = `
      import { initBackend, registerTrainingKernels } from '${entry}';
      const first = await initBackend();
      const again = await registerTrainingKernels();
      const second = await initBackend();
      console.log(JSON.stringify([first.gradients.length > 90, again, second.wasmKernels]));`;
    expect(JSON.parse(await runNode(code, packageDir))).toEqual([
      true,
      {
        gradients: [],
        wasmKernels: [],
        leanGradients: false,
        relaxedSimd: relaxedByDefault,
        winograd: true,
      },
      [],
    ]);
  });

  // A convolution and its two gradients over tiles of every edge (17 output channels, 7 × 7
  // positions, 3 × 3 × 12 depth), as numbers that would differ if a build computed another thing;
  // with 16 output channels, one that Winograd's algorithm takes.
  const convProbe = (options: string, co = 17) => `
    import * as tf from '${tfjsCore}';
    import { initBackend } from '${entry}';
    try {
      const r = await initBackend(${options});
      const wave = (shape, f) => tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b) },
        (_, i) => Math.sin(i * f)), shape);
      const x = wave([2, 7, 7, 12], 0.37), w = wave([3, 3, 12, ${co}], 0.91);
      const [dx, dw] = tf.grads((a, b) => tf.sum(tf.square(tf.conv2d(a, b, 1, 'same'))))([x, w]);
      const y = tf.conv2d(x, w, 1, 'same');
      console.log(JSON.stringify({ relaxedSimd: r.relaxedSimd, winograd: r.winograd,
        values: [...y.dataSync(), ...dx.dataSync(), ...dw.dataSync()] }));
    } catch (e) { console.log(JSON.stringify({ error: e.message })); }`;
  const relaxedByDefault = Number(process.versions.node.split('.')[0]) >= 22;

  it("runs relaxed SIMD's fused multiply-add where the runtime has it, and agrees with the 128-bit build", async () => {
    const simd128 = JSON.parse(await runNode(convProbe('{ relaxedSimd: false }'), packageDir));
    const byDefault = JSON.parse(await runNode(convProbe(''), packageDir));
    // Node.js 20 has relaxed SIMD behind a flag: the relaxed build is tested on every runtime.
    const flags = relaxedByDefault ? [] : ['--experimental-wasm-relaxed-simd'];
    const relaxed = JSON.parse(
      await runNode(convProbe('{ relaxedSimd: true }'), packageDir, flags),
    );
    expect([simd128.relaxedSimd, byDefault.relaxedSimd, relaxed.relaxedSimd]).toEqual([
      false,
      relaxedByDefault,
      true,
    ]);
    const values = simd128.values as number[];
    expect(values.length).toBe(2 * 7 * 7 * 17 + 2 * 7 * 7 * 12 + 3 * 3 * 12 * 17);
    const scale = Math.max(...values.map(Math.abs));
    for (const other of [byDefault.values, relaxed.values] as number[][]) {
      const worst = Math.max(...other.map((v, i) => Math.abs(v - (values[i] as number))));
      expect(worst / scale).toBeLessThan(1e-5);
    }
  });

  it.skipIf(relaxedByDefault)(
    'says what relaxedSimd: true needs where the runtime lacks it',
    async () => {
      const out = JSON.parse(await runNode(convProbe('{ relaxedSimd: true }'), packageDir));
      expect(out.error).toMatch(
        /relaxedSimd: true needs WebAssembly relaxed SIMD \(Node\.js ≥ 22.*Node\.js v20\.\d+\.\d+ does not validate .*training_kernels_relaxed\.wasm/,
      );
    },
  );

  it('runs 3×3 stride-1 convolutions by Winograd unless winograd: false, agreeing with the direct product', async () => {
    const direct = JSON.parse(await runNode(convProbe('{ winograd: false }', 16), packageDir));
    const byDefault = JSON.parse(await runNode(convProbe('', 16), packageDir));
    expect([direct.winograd, byDefault.winograd]).toEqual([false, true]);
    const values = direct.values as number[];
    const other = byDefault.values as number[];
    expect(other.length).toBe(values.length);
    const scale = Math.max(...values.map(Math.abs));
    const diffs = other.map((v, i) => Math.abs(v - (values[i] as number)));
    expect(Math.max(...diffs) / scale).toBeLessThan(1e-5);
    // Another algorithm: its rounding differs from the direct product's somewhere.
    expect(diffs.some((d) => d > 0)).toBe(true);
  });

  it('rejects a winograd that is not a boolean', async () => {
    const out = JSON.parse(await runNode(convProbe('{ winograd: 1 }'), packageDir));
    expect(out.error).toBe(
      'registerTrainingKernels: expected winograd to be true, false or undefined, found 1',
    );
  });

  it('rejects a relaxedSimd that is not a boolean', async () => {
    const out = JSON.parse(await runNode(convProbe("{ relaxedSimd: 'yes' }"), packageDir));
    expect(out.error).toBe(
      'registerTrainingKernels: expected relaxedSimd to be true, false or undefined, found "yes"',
    );
  });
});
