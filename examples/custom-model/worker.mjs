// One worker of the custom-model example: registers 'vgg-small', joins the ring its launcher set
// up (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, THOR_TS_JOB_TOKEN) and trains with `train()`.
import './vgg.mjs';

import { readFile } from 'node:fs/promises';

import { initBackend } from '@thor-ts/backend';
import { joinRingFromEnv } from '@thor-ts/distributed';
import { train, validateConfig } from '@thor-ts/train';

const path = process.argv[2];
const config = validateConfig(JSON.parse(await readFile(path, 'utf8')), path);
await initBackend();
const ring = await joinRingFromEnv();
await train(config, ring, { resume: false });
await ring.close();
