import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { env, findBackend, getBackend, ready, setBackend } from '@tensorflow/tfjs-core';

import {
  registerTrainingKernels,
  type TrainingKernelsOptions,
  type TrainingKernelsReport,
} from './register_training_kernels.js';

/** `wasm` (tfjs-backend-wasm, the default), `cpu` (plain JS), `tensorflow` (tfjs-node, optional). */
export type BackendName = 'wasm' | 'cpu' | 'tensorflow';

export interface InitBackendOptions extends TrainingKernelsOptions {
  backend?: BackendName;
  /**
   * Folder (with a trailing slash) holding tfjs-backend-wasm's `.wasm` files. By default they are
   * found next to the installed `@tensorflow/tfjs-backend-wasm`, whatever the working directory.
   */
  wasmPaths?: string;
}

export interface InitBackendResult extends TrainingKernelsReport {
  backend: BackendName;
  /** For `wasm`: whether its SIMD build runs. Threads are always 1 per process in Node. */
  simd: boolean;
  threads: number;
}

const backendNames: readonly BackendName[] = ['wasm', 'cpu', 'tensorflow'];
const require = createRequire(import.meta.url);

/** The folder of tfjs-backend-wasm's binaries, resolved from this package's own location. */
export function wasmBinariesDir(): string {
  return join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/');
}

/**
 * Loads a tfjs backend, makes it able to train (`registerTrainingKernels()`), and makes it the
 * current one. Nothing happens at import time: this call is the only place that does it.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<InitBackendResult> {
  const backend = options.backend ?? 'wasm';
  if (!backendNames.includes(backend)) {
    throw new Error(
      `initBackend: expected backend to be one of ${backendNames.join(', ')}, found '${String(backend)}'`,
    );
  }
  // The wasm backend's emscripten glue installs process-wide handlers that rethrow every uncaught
  // exception and unhandled rejection (so a process's own handlers never see them and it exits 7
  // with a stack trace): they are taken off again below.
  const before = processErrorListeners();
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // setWasmPaths may only run before the backend first initializes.
    if (findBackend('wasm') === null) wasm.setWasmPaths(options.wasmPaths ?? wasmBinariesDir());
  } else if (backend === 'cpu') {
    await import('@tensorflow/tfjs-backend-cpu');
  } else {
    await importTfjsNode();
  }
  const report = await registerTrainingKernels(options);
  if (!(await setBackend(backend))) {
    throw new Error(`initBackend: tfjs could not initialize the '${backend}' backend`);
  }
  await ready();
  for (const [event, listeners] of processErrorListeners()) {
    for (const l of listeners) if (!before.get(event)?.includes(l)) process.off(event, l);
  }
  if (getBackend() !== backend) {
    throw new Error(`initBackend: expected '${backend}' to be active, found '${getBackend()}'`);
  }
  return {
    backend,
    ...report,
    simd: backend === 'wasm' && env().getBool('WASM_HAS_SIMD_SUPPORT'),
    threads: 1,
  };
}

async function importTfjsNode(): Promise<void> {
  const name = '@tensorflow/tfjs-node';
  try {
    await import(name);
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new Error(
        `initBackend: backend 'tensorflow' needs ${name}, which is not installed: ` +
          `npm install ${name}@4.22.0 (it downloads libtensorflow at install time)`,
        { cause },
      );
    }
    throw cause;
  }
}

/** The process's current 'uncaughtException' and 'unhandledRejection' listeners. */
function processErrorListeners(): Map<'uncaughtException' | 'unhandledRejection', Listener[]> {
  return new Map([
    ['uncaughtException', process.listeners('uncaughtException') as Listener[]],
    ['unhandledRejection', process.listeners('unhandledRejection') as Listener[]],
  ]);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (...args: any[]) => void;
