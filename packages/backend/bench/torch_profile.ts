// PyTorch's side of `bench:profile`: runs torch_resnet50_profile.py with Debian's interpreter
// and reads its JSON line.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import type { StepPhase } from './resnet50.js';

export interface TorchProfile {
  /** "pytorch <version>". */
  peer: string;
  threads: number;
  /** How its memory allocator was set up (see torch_resnet50_step.py). */
  allocator: string;
  /** The plain step of median length, and its phases. */
  plainStepMs: number;
  plainPhasesMs: Record<StepPhase, number>;
  profiledStepMs: number[];
  /** The profiled step of median length: its wall time, and its ops' self CPU time summed. */
  wallMs: number;
  opsMs: number;
  phases: Record<StepPhase, { wallMs: number; opsMs: number }>;
  /** Slowest first. */
  ops: { name: string; calls: number; ms: number }[];
}

/** The profile, or why there is none. */
export async function torchProfile(options: {
  batch: number;
  size: number;
  steps: number;
  threads: number;
}): Promise<TorchProfile | string> {
  const run = promisify(execFile);
  try {
    await run('/usr/bin/python3', ['-c', 'import torch, torchvision']);
  } catch {
    return 'not measured: /usr/bin/python3 cannot import torch and torchvision (apt-get install python3-torch python3-torchvision)';
  }
  const script = fileURLToPath(new URL('torch_resnet50_profile.py', import.meta.url));
  const args = Object.entries(options).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const { stdout } = await run('/usr/bin/python3', [script, ...args], { maxBuffer: 1 << 26 });
  const line = stdout.split('\n').find((l) => l.startsWith('{'));
  if (line === undefined) throw new Error(`${script} printed no JSON line:\n${stdout}`);
  return JSON.parse(line) as TorchProfile;
}
