/**
 * torchrun's launcher flags, for the commands that launch workers (thor-ts-launch, thor-ts train):
 * `--nproc-per-node`, `--nnodes`, `--node-rank`, `--master-addr`, `--master-port` and
 * `--max-restarts`, with `--nproc` and torchrun's underscore spellings (`--nproc_per_node`…)
 * accepted as aliases.
 */
import { checkLaunchOptions, LaunchOptionsError, type LaunchOptions } from './launch.js';

const names = [
  'nproc-per-node',
  'nnodes',
  'node-rank',
  'master-addr',
  'master-port',
  'max-restarts',
] as const;
type Name = (typeof names)[number];

/** The flags as `parseArgs` options: each a string, under its own name and its aliases. */
export const LAUNCH_FLAGS: Record<string, { type: 'string' }> = Object.fromEntries(
  [...names, ...names.map((n) => n.replaceAll('-', '_')), 'nproc'].map((n) => [
    n,
    { type: 'string' },
  ]),
);

/** What the flags' usage line says. */
export const LAUNCH_USAGE =
  '--nproc-per-node <n> [--nnodes <m> --node-rank <r> --master-addr <host> [--master-port <p>]] [--max-restarts <k>]';

/**
 * The launch options that `values` (parsed with {@link LAUNCH_FLAGS}) give, checked; `defaults`
 * fills what no flag sets. Throws a {@link LaunchOptionsError} (a usage error) naming the flag.
 */
export function launchOptionsFromFlags(
  values: Record<string, unknown>,
  command: string,
  defaults: { nproc?: number } = {},
): Pick<
  LaunchOptions,
  'nproc' | 'nnodes' | 'nodeRank' | 'masterAddr' | 'masterPort' | 'maxRestarts'
> {
  const flag = (name: Name | 'nproc', ...aliases: string[]): string | undefined => {
    const given = [name, ...aliases]
      .map((n) => [n, values[n]] as const)
      .filter((e): e is readonly [string, string] => typeof e[1] === 'string');
    if (new Set(given.map((e) => e[1])).size > 1) {
      throw new LaunchOptionsError(
        `${command}: ${given.map(([n, v]) => `--${n} ${v}`).join(' and ')} disagree; give one`,
      );
    }
    return given[0]?.[1];
  };
  const integer = (name: Name, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (text.trim() === '' || !Number.isInteger(n)) {
      throw new LaunchOptionsError(`${command}: --${name} expected an integer, found '${text}'`);
    }
    return n;
  };
  const alias = (name: Name): string | undefined =>
    name === 'nproc-per-node'
      ? flag(name, name.replaceAll('-', '_'), 'nproc')
      : flag(name, name.replaceAll('-', '_'));
  const options = {
    nproc: integer('nproc-per-node', alias('nproc-per-node')) ?? defaults.nproc!,
    nnodes: integer('nnodes', alias('nnodes')),
    nodeRank: integer('node-rank', alias('node-rank')),
    masterAddr: alias('master-addr'),
    masterPort: integer('master-port', alias('master-port')),
    maxRestarts: integer('max-restarts', alias('max-restarts')),
  };
  for (const k of Object.keys(options) as (keyof typeof options)[]) {
    if (options[k] === undefined) delete options[k];
  }
  try {
    checkLaunchOptions({ ...options, command: '' });
  } catch (e) {
    throw new LaunchOptionsError((e as Error).message.replace(/^launch:/, `${command}:`));
  }
  return options;
}
