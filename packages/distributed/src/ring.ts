/**
 * A worker's membership in a job: the collectives (all-reduce, all-gather, broadcast, barrier)
 * over authenticated WebSocket links to its peers, run one after another in call order.
 */
import type { Algorithm, Port } from './algorithm.js';
import { chunkBounds } from './algorithm.js';
import { BroadcastSchedule } from './broadcast_schedule.js';
import { type Coordinator, startCoordinator } from './coordinator.js';
import { describe, type Fingerprint, mismatch } from './fingerprint.js';
import {
  CollectiveOp,
  decodeControl,
  encodeControl,
  encodeHeader,
  FrameKind,
  type FrameHeader,
  jobTag,
  WireDtype,
} from './frame.js';
import { fromHalf, roundToHalf, toHalf } from './half.js';
import { HalvingDoubling } from './halving_doubling.js';
import type { Link, Listener, Log } from './link.js';
import { join } from './rendezvous.js';
import { RingError } from './ring_error.js';
import { RingSchedule } from './ring_schedule.js';

export interface RingOptions {
  rank: number;
  worldSize: number;
  /** The coordinator's `host:port`. */
  coordinator: string;
  /** The job's shared secret; never sent. */
  token: string;
  /** Default 'thor-ts'. Frames of other jobs are refused. */
  jobId?: string;
  /** Where this worker listens for peers. Default 127.0.0.1. */
  listenHost?: string;
  /** The address peers dial. Default `listenHost`. */
  advertiseHost?: string;
  /** Default 0: any free port. */
  port?: number;
  /** A collective without progress for this long fails, naming the rank it waits for. Default 60 000. */
  timeoutMs?: number;
  /** Ring segment size. Default 1 MiB. */
  segmentBytes?: number;
  /** Buffers up to this size use halving-doubling when the world size is a power of two. Default 64 KiB. */
  smallBytes?: number;
  /**
   * Rank 0 only: also run the coordinator, listening on this host at the `coordinator` port
   * (for clusters without a separate launcher process). Closed with the ring.
   */
  hostCoordinator?: string;
  log?: Log;
  /** Called once when the ring fails, also while no collective is running. */
  onError?: (e: RingError) => void;
}

export interface AllReduceOptions {
  /** Default 'sum'. */
  op?: 'sum' | 'mean';
  /** Default 0. Part of the fingerprint every rank must agree on. */
  bucket?: number;
  /** Default 'float32'. 'float16' halves the bytes; every rank still ends with identical bytes. */
  wire?: 'float32' | 'float16';
}

interface Running {
  fp: Fingerprint;
  algo: Algorithm;
  sends: number;
  resolve: () => void;
  timer: NodeJS.Timeout;
}

export class Ring {
  readonly rank: number;
  readonly worldSize: number;
  private readonly tag: number;
  private seq = 0;
  private started = 0;
  private barriers = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private current: Running | undefined;
  private readonly early = new Map<number, [number, FrameHeader, Buffer][]>();
  private readonly released = new Map<number, () => void>();
  private failure: RingError | undefined;
  private closed = false;
  private readonly rejecters = new Set<(e: RingError) => void>();
  private hosted: Coordinator | undefined;

  private constructor(
    private readonly opts: Required<
      Pick<RingOptions, 'timeoutMs' | 'segmentBytes' | 'smallBytes' | 'log'>
    > &
      RingOptions,
    private readonly coordinator: Link,
    private readonly listener: Listener,
    private readonly peers: Map<number, Link>,
  ) {
    this.rank = opts.rank;
    this.worldSize = opts.worldSize;
    this.tag = jobTag(opts.jobId ?? 'thor-ts');
    for (const [r, link] of peers) {
      link.listen({
        frame: (h, data) => this.onData(r, h, data),
        lost: (why) => this.onLost(r, why),
      });
    }
    coordinator.listen({
      frame: (h, data) => this.onControl(h, data),
      lost: (why) => {
        if (!this.closed) this.fail(`lost the coordinator at ${opts.coordinator}: ${why}`, false);
      },
    });
  }

  /** Joins the job: rendezvous through the coordinator, then links to the peers. */
  static async join(options: RingOptions): Promise<Ring> {
    const { rank, worldSize } = options;
    if (
      !Number.isInteger(worldSize) ||
      worldSize < 1 ||
      !Number.isInteger(rank) ||
      rank < 0 ||
      rank >= worldSize
    ) {
      throw new Error(
        `joinRing: expected 0 ≤ rank < worldSize, got rank ${rank}, worldSize ${worldSize}`,
      );
    }
    const opts = {
      timeoutMs: 60_000,
      segmentBytes: 1 << 20,
      smallBytes: 64 << 10,
      log: (l: string) => console.error(`[rank ${rank}] ${l}`),
      ...options,
    };
    const listenHost = opts.listenHost ?? '127.0.0.1';
    let hosted: Coordinator | undefined;
    if (opts.hostCoordinator !== undefined && rank === 0) {
      hosted = await startCoordinator({
        worldSize,
        token: opts.token,
        host: opts.hostCoordinator,
        port: Number(opts.coordinator.slice(opts.coordinator.lastIndexOf(':') + 1)),
        timeoutMs: opts.timeoutMs,
        ...(opts.jobId !== undefined ? { jobId: opts.jobId } : {}),
        log: opts.log,
      });
    }
    const jobId = opts.jobId ?? 'thor-ts';
    const joined = await join({
      rank,
      worldSize,
      coordinator: opts.coordinator,
      creds: { token: opts.token, jobId, tag: jobTag(jobId) },
      listenHost,
      advertiseHost: opts.advertiseHost ?? listenHost,
      port: opts.port ?? 0,
      timeoutMs: opts.timeoutMs,
      maxFrameBytes: Math.max(opts.segmentBytes, opts.smallBytes, 64 << 10),
      log: opts.log,
    });
    const ring = new Ring(opts, joined.coordinator, joined.listener, joined.peers);
    ring.hosted = hosted;
    return ring;
  }

  /** Sums (or averages) `buf` over all ranks in place; resolves with `buf`. */
  allReduce(buf: Float32Array, o: AllReduceOptions = {}): Promise<Float32Array> {
    const n = this.worldSize;
    const dtype = o.wire === 'float16' ? WireDtype.float16 : WireDtype.float32;
    const scale = o.op === 'mean' ? 1 / n : 1;
    const finish = (v: Float32Array): void => {
      if (scale !== 1) for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) * scale;
      if (dtype === WireDtype.float16) roundToHalf(v);
    };
    const small = buf.byteLength <= this.opts.smallBytes && n > 1 && (n & (n - 1)) === 0;
    return this.collective(CollectiveOp.allReduce, o.bucket ?? 0, buf.length, dtype, (port) =>
      small
        ? new HalvingDoubling(port, buf, finish)
        : new RingSchedule(port, buf, {
            bounds: (c) => chunkBounds(buf.length, n, c),
            reduceSteps: n - 1,
            segElems: this.segElems(buf.length),
            finish,
          }),
    ).then(() => buf);
  }

  /** Every rank's `local` (same length everywhere), concatenated in rank order. */
  allGather(local: Float32Array, bucket = 0): Promise<Float32Array> {
    const len = local.length;
    const out = new Float32Array(len * this.worldSize);
    out.set(local, this.rank * len);
    return this.collective(
      CollectiveOp.allGather,
      bucket,
      len,
      WireDtype.float32,
      (port) =>
        new RingSchedule(port, out, {
          bounds: (c) => [c * len, (c + 1) * len],
          reduceSteps: 0,
          segElems: this.segElems(len),
          finish: () => undefined,
        }),
    ).then(() => out);
  }

  /** Overwrites `buf` on every rank with the root's; resolves with `buf`. */
  broadcast(buf: Float32Array, root = 0, bucket = 0): Promise<Float32Array> {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) {
      throw new Error(`broadcast: expected a root rank below ${this.worldSize}, got ${root}`);
    }
    return this.collective(
      CollectiveOp.broadcast,
      bucket,
      buf.length,
      WireDtype.float32,
      (port) => new BroadcastSchedule(port, buf, root, this.segElems(buf.length)),
    ).then(() => buf);
  }

  /** Resolves once every rank has called `barrier()` as often as this one. */
  barrier(): Promise<void> {
    return this.queue(
      () =>
        new Promise<void>((resolve) => {
          const id = this.barriers++;
          this.released.set(id, resolve);
          this.coordinator.send(encodeControl(this.tag, FrameKind.barrier, { id }));
        }),
    );
  }

  /** The failure that stopped this ring, if any. */
  get error(): RingError | undefined {
    return this.failure;
  }

  /**
   * Waits for queued collectives and for every rank to reach `close()` (so no rank leaves while a
   * peer still needs it), then leaves the job and closes every link.
   */
  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
    if (!this.failure && !this.closed) await this.barrier().catch(() => undefined);
    this.closed = true;
    for (const l of this.peers.values()) l.close();
    this.coordinator.close();
    await this.listener.close();
    await this.hosted?.close();
  }

  private segElems(length: number): number {
    // At least two segments per chunk for buffers past 64 KiB, so transfer and reduction overlap.
    const chunk = Math.ceil(length / this.worldSize);
    const cap = Math.max(1, Math.floor(this.opts.segmentBytes / 4));
    return Math.max(1, Math.min(cap, chunk > 16384 ? Math.ceil(chunk / 2) : chunk));
  }

  private queue<T>(run: () => Promise<T>): Promise<T> {
    const next = this.chain.then(() => {
      if (this.failure) throw this.failure;
      return new Promise<T>((resolve, reject) => {
        this.rejecters.add(reject);
        run()
          .then(resolve, reject)
          .finally(() => this.rejecters.delete(reject));
      });
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  private collective(
    op: CollectiveOp,
    bucket: number,
    length: number,
    dtype: WireDtype,
    make: (port: Port) => Algorithm,
  ): Promise<void> {
    const fp: Fingerprint = { op, seq: this.seq++, bucket, length, dtype };
    return this.queue(
      () =>
        new Promise<void>((resolve) => {
          const port: Port = {
            rank: this.rank,
            n: this.worldSize,
            send: (to, step, offset, data) => this.send(fp, to, step, offset, data),
          };
          const run: Running = {
            fp,
            algo: make(port),
            sends: 0,
            resolve,
            timer: this.deadline(fp),
          };
          this.current = run;
          this.started = fp.seq + 1;
          run.algo.start();
          for (const [from, h, data] of this.early.get(fp.seq) ?? []) this.feed(run, from, h, data);
          this.early.delete(fp.seq);
          this.settle(run);
        }),
    );
  }

  private deadline(fp: Fingerprint): NodeJS.Timeout {
    const t = setTimeout(() => {
      const run = this.current;
      if (!run || run.fp !== fp) return;
      const msg = `no progress for ${this.opts.timeoutMs} ms, waiting for rank ${run.algo.waitingFor()}`;
      // Ask the coordinator to find who stopped; fall back to our own view if it cannot answer.
      const report = `rank ${this.rank} during ${describe(fp)}: ${msg}`;
      this.coordinator.send(encodeControl(this.tag, FrameKind.stalled, { message: report }));
      setTimeout(() => this.fail(msg, true), 5_000).unref();
    }, this.opts.timeoutMs);
    t.unref();
    return t;
  }

  private send(
    fp: Fingerprint,
    to: number,
    step: number,
    offset: number,
    data: Float32Array,
  ): void {
    const run = this.current;
    const link = this.peers.get(to);
    if (!run || !link || this.failure) return;
    const header = encodeHeader(this.tag, { kind: FrameKind.data, ...fp, step, offset });
    const payload =
      fp.dtype === WireDtype.float16
        ? new Uint8Array(toHalf(data).buffer)
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    run.sends++;
    link.send(header, payload, (err) => {
      run.sends--;
      if (err) this.onLost(to, `rank ${to} closed its connection (sending failed: ${err.message})`);
      else this.settle(run);
    });
  }

  private settle(run: Running): void {
    if (this.current === run && run.sends === 0 && run.algo.done() && !this.failure) {
      clearTimeout(run.timer);
      this.current = undefined;
      run.resolve();
    }
  }

  private onData(from: number, h: FrameHeader, data: Buffer): void {
    if (this.failure) return;
    if (h.kind !== FrameKind.data) {
      return this.fail(`rank ${from} sent a ${h.kind} frame on a data link`, true);
    }
    const run = this.current;
    if (run && h.seq === run.fp.seq) return this.feed(run, from, h, data);
    if (h.seq < this.started) {
      return this.fail(`rank ${from} sent a frame of finished collective #${h.seq}`, true);
    }
    const list = this.early.get(h.seq) ?? [];
    list.push([from, h, data]);
    this.early.set(h.seq, list);
  }

  private feed(run: Running, from: number, h: FrameHeader, data: Buffer): void {
    const diff = mismatch(run.fp, h);
    if (diff !== undefined) {
      return this.fail(`rank ${from} disagrees on the collective (theirs vs ours: ${diff})`, true);
    }
    const bytes = data;
    const width = h.dtype === WireDtype.float16 ? 2 : 4;
    if (bytes.length % width !== 0) {
      return this.fail(`rank ${from} sent ${bytes.length} payload bytes, not whole elements`, true);
    }
    let values: Float32Array;
    if (width === 2) {
      const halves = new Uint16Array(bytes.length / 2);
      new Uint8Array(halves.buffer).set(bytes);
      values = fromHalf(halves, new Float32Array(halves.length));
    } else if (bytes.byteOffset % 4 === 0) {
      values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    } else {
      values = new Float32Array(bytes.length / 4);
      new Uint8Array(values.buffer).set(bytes);
    }
    try {
      run.algo.receive(from, h.step, h.offset, values);
    } catch (e) {
      return this.fail(`bad frame from rank ${from}: ${(e as Error).message}`, true);
    }
    run.timer.refresh();
    this.settle(run);
  }

  private onControl(h: FrameHeader, data: Buffer): void {
    const body = decodeControl(data);
    if (h.kind === FrameKind.release && typeof body.id === 'number') {
      this.released.get(body.id)?.();
      this.released.delete(body.id);
    } else if (h.kind === FrameKind.abort) {
      this.fail(`the job was aborted: ${String(body.message)}`, false);
    }
  }

  private onLost(from: number, why: string): void {
    if (this.closed) return;
    if (/\(1000 done\)/.test(why) && !this.current) return; // it finished; fine while idle
    // A peer that failed because of another rank closes its links as it exits, and the
    // coordinator's abort naming the first failure is usually a moment behind: give it that moment
    // so every rank names the rank that failed first, not the one that left after it.
    setTimeout(() => this.fail(why, true), lostGraceMs).unref();
  }

  private fail(message: string, report: boolean): void {
    if (this.failure || this.closed) return;
    const where = this.current ? ` during ${describe(this.current.fp)}` : '';
    const err = new RingError(`rank ${this.rank}${where}: ${message}`, this.rank);
    this.failure = err;
    if (this.current) clearTimeout(this.current.timer);
    if (report)
      this.coordinator.send(encodeControl(this.tag, FrameKind.abort, { message: err.message }));
    for (const reject of this.rejecters) reject(err);
    this.opts.onError?.(err);
  }
}

/** How long a lost link waits for the coordinator's abort before failing on its own. */
const lostGraceMs = 250;

/** Joins a job as `rank` of `worldSize`; see {@link RingOptions}. */
export function joinRing(options: RingOptions): Promise<Ring> {
  return Ring.join(options);
}
