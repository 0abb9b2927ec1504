import type { BatchNormConfig, batchNormPresets } from './layers/batch_norm.js';
import type { Model } from './model.js';
import type { ResNetOptions } from './resnet.js';
import {
  cifarResnet20,
  cifarResnet32,
  cifarResnet56,
  resnet101,
  resnet152,
  resnet18,
  resnet34,
  resnet50,
  resnetLight,
  type LightOptions,
} from './variants.js';

/**
 * What a config's `model` section gives an architecture's builder: the classifier's outputs,
 * the initialization's seed, and any other field of the section as it is (`layers`, `widths`,
 * `batchNorm`…), for the builder to check.
 */
export interface ArchOptions {
  classes: number;
  seed: number;
  batchNorm?: keyof typeof batchNormPresets | BatchNormConfig;
  zeroInitResidual?: boolean;
  [field: string]: unknown;
}

export type ArchBuilder = (options: ArchOptions) => Model;

/** A built-in ResNet builder that takes the config fields it knows, checked, and refuses others. */
function builtIn(make: (o: ResNetOptions & LightOptions) => Model, fields: string[]): ArchBuilder {
  const known = ['classes', 'seed', 'batchNorm', 'zeroInitResidual', 'inputChannels', ...fields];
  return (o) => {
    const unknown = Object.keys(o).filter((k) => o[k] !== undefined && !known.includes(k));
    if (unknown.length > 0) {
      const near = nearestName(unknown[0] as string, known);
      throw new Error(
        `expected the model's fields among ${known.join(', ')}, found ${unknown.map((k) => `'${k}'`).join(', ')}${near === undefined ? '' : ` (did you mean '${near}'?)`}`,
      );
    }
    for (const key of ['layers', 'widths']) {
      const v = o[key];
      if (v !== undefined && !(Array.isArray(v) && v.length > 0 && v.every(isCount))) {
        throw new Error(
          `expected '${key}' a non-empty list of integers ≥ 1, found ${JSON.stringify(v)}`,
        );
      }
    }
    return make(o as ResNetOptions & LightOptions);
  };
}

const isCount = (n: unknown) => Number.isInteger(n) && (n as number) >= 1;

const builders = new Map<string, ArchBuilder>([
  ['resnet18', builtIn(resnet18, ['widths'])],
  ['resnet34', builtIn(resnet34, ['widths'])],
  ['resnet50', builtIn(resnet50, ['widths'])],
  ['resnet101', builtIn(resnet101, ['widths'])],
  ['resnet152', builtIn(resnet152, ['widths'])],
  ['cifarResnet20', builtIn(cifarResnet20, ['widths'])],
  ['cifarResnet32', builtIn(cifarResnet32, ['widths'])],
  ['cifarResnet56', builtIn(cifarResnet56, ['widths'])],
  ['resnetLight', builtIn(resnetLight, ['layers', 'widths', 'block'])],
]);

/**
 * Makes `name` an architecture a config can name (`model.arch`), like timm's `register_model`.
 * Every process that builds the model (each worker) registers it before training or evaluating.
 * Registering a name again replaces its builder only with `{ replace: true }`.
 */
export function registerArch(
  name: string,
  build: ArchBuilder,
  options: { replace?: boolean } = {},
): void {
  if (!/^[A-Za-z][\w.-]*$/.test(name)) {
    throw new Error(
      `registerArch: expected a name of letters, digits, '_', '.' or '-' starting with a letter, found ${JSON.stringify(name)}`,
    );
  }
  if (builders.has(name) && options.replace !== true) {
    throw new Error(
      `registerArch: '${name}' is already registered (pass { replace: true } to replace it)`,
    );
  }
  builders.set(name, build);
}

/** The registered architectures' names, built-in ones first. */
export function archNames(): string[] {
  return [...builders.keys()];
}

/** Whether `name` is a registered architecture. */
export function hasArch(name: string): boolean {
  return builders.has(name);
}

/** Builds the registered architecture `name`; an unknown name is an error that suggests the nearest. */
export function buildArch(name: string, options: ArchOptions): Model {
  const build = builders.get(name);
  if (build === undefined) throw new Error(unknownArch(name));
  const model = build(options);
  model.state.metadata.set('arch', name);
  model.state.metadata.set('arch_options', JSON.stringify(options));
  return model;
}

/** The message for an unknown architecture: the nearest registered name, and all of them. */
export function unknownArch(name: unknown): string {
  const names = archNames();
  const near = typeof name === 'string' ? nearestName(name, names) : undefined;
  const hint = near === undefined ? '' : ` (did you mean '${near}'?)`;
  return `expected a registered architecture, found ${JSON.stringify(name)}${hint}; registered: ${names.join(', ')} (registerArch adds one)`;
}

/**
 * The candidate closest to `name` by edit distance (case aside), when it is close enough to be
 * a likely typo: within 2 edits, or a third of the name's length. For "did you mean" hints.
 */
export function nearestName(name: string, candidates: readonly string[]): string | undefined {
  const best = candidates
    .map((n) => ({ n, d: editDistance(n.toLowerCase(), name.toLowerCase()) }))
    .sort((a, b) => a.d - b.d)[0];
  return best !== undefined && best.d <= Math.max(2, name.length / 3) ? best.n : undefined;
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (row[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      next.push(Math.min(sub, (row[j] as number) + 1, (next[j - 1] as number) + 1));
    }
    row = next;
  }
  return row[b.length] as number;
}
