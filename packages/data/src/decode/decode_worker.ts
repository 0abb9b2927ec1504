// A DataLoader's decoding thread (see decode_pool.ts): decodes the JPEGs it is sent with the wasm
// decoder, straight into the batch's shared buffer, and answers each with its status.
import { parentPort, workerData } from 'node:worker_threads';

import type { DecodeReply, DecodeRequest } from './decode_pool.js';
import { WasmJpeg } from './wasm_jpeg.js';

const port = parentPort!;
const decoder = new WasmJpeg(workerData as Float32Array);

port.on('message', (request: DecodeRequest) => {
  const reply: DecodeReply = { id: request.id, status: 0 };
  try {
    const pixels = decoder.cropResize(request.bytes, request.resize, request.flip);
    if (typeof pixels === 'number') reply.status = pixels;
    else new Float32Array(request.out, request.offset * 4, pixels.length).set(pixels);
  } catch (error) {
    // A fault of the decoder itself: the file goes to sharp, and the reason is kept.
    reply.status = -1;
    reply.error = (error as Error).message;
  }
  port.postMessage(reply);
});
