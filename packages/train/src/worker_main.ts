#!/usr/bin/env node
// One training worker: `thor-ts-launch --nproc N -- node worker_main.js <config.json>` (or any
// launcher that sets RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT and THOR_TS_JOB_TOKEN).
import { readFile } from 'node:fs/promises';

import { initBackend } from '@thor-ts/backend';
import { joinRingFromEnv } from '@thor-ts/distributed';

import { validateConfig, type TrainConfig } from './config.js';
import { train } from './trainer.js';

const path = process.argv[2];
if (path === undefined) {
  console.error('usage: worker_main.js <config.json>');
  process.exit(2);
}
const config = validateConfig(JSON.parse(await readFile(path, 'utf8')) as TrainConfig, path);
await initBackend();
const ring = await joinRingFromEnv();
await train(config, ring);
await ring.close();
