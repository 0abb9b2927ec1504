// One worker of the custom-model example: registers 'vgg-small', joins the ring its launcher set
// up (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, THOR_TS_JOB_TOKEN) and trains with `train()`,
// continuing from the run's last.ckpt when there is one. `--stop-after N` stops the run after
// step N with a checkpoint, as Ctrl-C or a preempted job would.
import './vgg.mjs';

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { initBackend } from '@thor-ts/backend';
import { joinRingFromEnv } from '@thor-ts/distributed';
import { train, validateConfig } from '@thor-ts/train';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'stop-after': { type: 'string' } },
});
const path = positionals[0];
const config = validateConfig(JSON.parse(await readFile(path, 'utf8')), path);
await initBackend();
const ring = await joinRingFromEnv();
const stop = new AbortController();
const stopAfter = values['stop-after'] === undefined ? undefined : Number(values['stop-after']);
const result = await train(config, ring, {
  signal: stop.signal,
  onStep: (step) => step === stopAfter && stop.abort(),
});
await ring.close();
if (ring.rank === 0 && result.stopped) console.log(`stopped after step ${result.step}`);
