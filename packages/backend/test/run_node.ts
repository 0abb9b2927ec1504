import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Runs an ESM snippet in a fresh Node process (fresh tfjs globals), with `nodeArgs` before it, and
 * returns its stdout.
 */
export async function runNode(code: string, cwd: string, nodeArgs: string[] = []): Promise<string> {
  const { stdout } = await run(process.execPath, [...nodeArgs, '--input-type=module', '-e', code], {
    cwd,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}
