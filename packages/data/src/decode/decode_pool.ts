import { Worker } from 'node:worker_threads';

import type { PillowResize } from './decode_image.js';

/** One image for a decoding thread. */
export interface DecodeRequest {
  id: number;
  bytes: Uint8Array;
  resize: PillowResize;
  flip: boolean;
  /** The batch buffer (float32) and where this image goes in it, in floats. */
  out: SharedArrayBuffer;
  offset: number;
}

/** 0: the pixels are in place; else the decoder's status (or -1 and `error` if it threw). */
export interface DecodeReply {
  id: number;
  status: number;
  error?: string;
}

interface Thread {
  worker: Worker;
  inFlight: number;
}

/**
 * Threads that decode baseline JPEGs with the wasm decoder, each with its own module instance,
 * writing into batch buffers shared with this thread. Images go to the thread with the fewest in
 * flight. The threads keep the process alive only while they have work.
 */
export class DecodePool {
  private readonly threads: Thread[] = [];
  private readonly waiting = new Map<
    number,
    { thread: Thread; done: (reply: DecodeReply) => void }
  >();
  private nextId = 0;
  private failure: Error | undefined;

  constructor(size: number, table: Float32Array) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`Expected at least 1 decoding thread, found ${size}.`);
    }
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL('./decode_worker.js', import.meta.url), {
        workerData: table,
      });
      const thread = { worker, inFlight: 0 };
      worker.on('message', (reply: DecodeReply) => this.settle(thread, reply));
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`a decoding thread exited with code ${code}`));
      });
      worker.unref();
      this.threads.push(thread);
    }
  }

  /**
   * Decodes `bytes` through `resize` into `out` at `offset` (floats). Resolves with status 0 when
   * the pixels are there, else with the status that sends the file to sharp (-1 once a thread
   * has failed: every later file goes to sharp).
   */
  decode(
    bytes: Uint8Array,
    resize: PillowResize,
    flip: boolean,
    out: Float32Array,
    offset: number,
  ): Promise<DecodeReply> {
    if (this.failure) return Promise.resolve({ id: -1, status: -1, error: this.failure.message });
    if (!(out.buffer instanceof SharedArrayBuffer)) {
      throw new TypeError('Expected a batch buffer on a SharedArrayBuffer, found an ArrayBuffer.');
    }
    const thread = this.threads.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
    if (thread.inFlight++ === 0) thread.worker.ref();
    const id = this.nextId++;
    const request: DecodeRequest = {
      id,
      bytes,
      resize,
      flip,
      out: out.buffer,
      offset: out.byteOffset / 4 + offset,
    };
    // The thread gets a copy (the caller keeps the bytes for sharp): of the file alone, not of
    // the whole buffer it may be a slice of.
    const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    if (!own) request.bytes = bytes.slice();
    return new Promise((done) => {
      this.waiting.set(id, { thread, done });
      thread.worker.postMessage(request);
    });
  }

  /** Stops the threads. */
  async close(): Promise<void> {
    await Promise.all(this.threads.map(({ worker }) => worker.terminate()));
    this.threads.length = 0;
  }

  private settle(thread: Thread, reply: DecodeReply): void {
    const entry = this.waiting.get(reply.id);
    if (!entry) return;
    this.waiting.delete(reply.id);
    if (--thread.inFlight === 0) thread.worker.unref();
    entry.done(reply);
  }

  private fail(error: Error): void {
    this.failure ??= new Error(`@thor-ts/data: a decoding thread failed: ${error.message}`);
    // Whatever was in flight goes to sharp: the caller sees a status, not a lost image.
    for (const [id, { thread }] of this.waiting) {
      this.settle(thread, { id, status: -1, error: this.failure.message });
    }
  }
}
