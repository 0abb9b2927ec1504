/**
 * A worker's membership in a job: the collectives (all-reduce, all-gather, broadcast, barrier)
 * over authenticated WebSocket links to its peers. Collectives get sequence numbers in call order
 * and run concurrently unless their buffers overlap (then the later one waits); frames are routed
 * by sequence number, so every collective reduces in its own fixed order.
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
import { FramePool } from './frame_pool.js';
import { fromHalf, roundToHalf, toHalf } from './half.js';
import { HalvingDoubling } from './halving_doubling.js';
import type { Link, Listener, Log } from './link.js';
import { InitialWeights } from './initial_weights.js';
import { GradientReducer, type ReducerOptions } from './reducer.js';
import { overlaps, type Region, regionOf } from './region.js';
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
  /** Set once the collectives it waits for are done and it started. */
  algo: Algorithm | undefined;
  /** Frames that arrived before it started. */
  early: [number, FrameHeader, Buffer][];
  sends: number;
  resolve: () => void;
  reject: (e: RingError) => void;
  timer: NodeJS.Timeout | undefined;
}

interface InFlight {
  region: Region;
  done: Promise<unknown>;
}

export class Ring {
  readonly rank: number;
  readonly worldSize: number;
  private readonly tag: number;
  private seq = 0;
  private barriers = 0;
  /** Settles when the last barrier did: collectives called after a barrier start after it. */
  private gate: Promise<unknown> = Promise.resolve();
  private readonly runs = new Map<number, Running>();
  private inFlight: InFlight[] = [];
  private readonly early = new Map<number, [number, FrameHeader, Buffer][]>();
  /** Holds early frames' payloads (see FramePool). */
  private readonly pool = new FramePool();
  /** By peer: the pool buffer its link is receiving an early frame's payload into. */
  private readonly placedEarly = new Map<number, Buffer>();
  private readonly released = new Map<number, () => void>();
  private failure: RingError | undefined;
  private closed = false;
  private readonly rejecters = new Set<(e: RingError) => void>();
  private hosted: Coordinator | undefined;
  private readonly initial: InitialWeights;

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
    this.initial = new InitialWeights(coordinator, this.tag, () => this.failure);
    for (const [r, link] of peers) {
      link.listen({
        frame: (h, data) => this.onData(r, h, data),
        lost: (why) => this.onLost(r, why),
        place: (h, bytes) => this.place(r, h, bytes),
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
    const fp = this.fingerprint(CollectiveOp.allReduce, o.bucket ?? 0, buf.length, dtype);
    return this.collective(fp, regionOf(buf), (port) =>
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
      this.fingerprint(CollectiveOp.allGather, bucket, len, WireDtype.float32),
      regionOf(out),
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
      this.fingerprint(CollectiveOp.broadcast, bucket, buf.length, WireDtype.float32),
      regionOf(buf),
      (port) => new BroadcastSchedule(port, buf, root, this.segElems(buf.length)),
    ).then(() => buf);
  }

  /**
   * Resolves once every rank has called `barrier()` as often as this one. Waits for the
   * collectives called before it; those called after it start once it is released.
   */
  barrier(): Promise<void> {
    const id = this.barriers++;
    const before = [this.gate, ...this.inFlight.map((f) => f.done)];
    const released = Promise.all(before).then(
      () =>
        new Promise<void>((resolve, reject) => {
          if (this.failure) throw this.failure;
          this.rejecters.add(reject);
          this.released.set(id, () => {
            this.rejecters.delete(reject);
            resolve();
          });
          this.coordinator.send(encodeControl(this.tag, FrameKind.barrier, { id }));
        }),
    );
    this.gate = released.catch(() => undefined);
    return released;
  }

  /**
   * Buckets gradients like PyTorch DDP's reducer: `sizes` are the parameters' element counts in
   * registration order; see {@link GradientReducer}.
   */
  reducer(sizes: readonly number[], options: ReducerOptions = {}): GradientReducer {
    return new GradientReducer(this, sizes, options);
  }

  /**
   * Stores `weights` at the coordinator as the job's authoritative initial weights (once per job),
   * for every rank and any worker restarted later to fetch. Resolves once the coordinator has them.
   */
  publishInitial(weights: Float32Array): Promise<void> {
    return this.initial.publish(weights, this.rank);
  }

  /** The initial weights published to the coordinator; waits until some rank publishes them. */
  fetchInitial(): Promise<Float32Array> {
    return this.initial.fetch();
  }

  /** How many collectives this rank has called (the next one's sequence number). */
  get sequence(): number {
    return this.seq;
  }

  /** The failure that stopped this ring, if any. */
  get error(): RingError | undefined {
    return this.failure;
  }

  /**
   * Waits for the collectives in flight and for every rank to reach `close()` (so no rank leaves
   * while a peer still needs it), then leaves the job and closes every link.
   */
  async close(): Promise<void> {
    await Promise.all([this.gate, ...this.inFlight.map((f) => f.done)]);
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

  private fingerprint(
    op: CollectiveOp,
    bucket: number,
    length: number,
    dtype: WireDtype,
  ): Fingerprint {
    return { op, seq: this.seq++, bucket, length, dtype };
  }

  /**
   * Starts the collective `fp` once the barrier before it and every collective in flight whose
   * buffer overlaps `region` are done; resolves when it is complete on this rank.
   */
  private collective(
    fp: Fingerprint,
    region: Region,
    make: (port: Port) => Algorithm,
  ): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const deps = [
      this.gate,
      ...this.inFlight.filter((f) => overlaps(f.region, region)).map((f) => f.done),
    ];
    const run: Running = {
      fp,
      algo: undefined,
      early: this.early.get(fp.seq) ?? [],
      sends: 0,
      resolve: () => undefined,
      reject: () => undefined,
      timer: undefined,
    };
    this.early.delete(fp.seq);
    this.runs.set(fp.seq, run);
    const done = new Promise<void>((resolve, reject) => {
      run.resolve = resolve;
      run.reject = reject;
    });
    const entry: InFlight = { region, done: done.catch(() => undefined) };
    this.inFlight.push(entry);
    const leave = (): void => {
      this.inFlight = this.inFlight.filter((f) => f !== entry);
      this.runs.delete(fp.seq);
    };
    done.then(leave, leave);
    void Promise.all(deps).then(() => this.start(run, make));
    return done;
  }

  private start(run: Running, make: (port: Port) => Algorithm): void {
    if (this.failure) return run.reject(this.failure);
    const port: Port = {
      rank: this.rank,
      n: this.worldSize,
      send: (to, step, offset, data) => this.send(run, to, step, offset, data),
    };
    run.algo = make(port);
    run.timer = this.deadline(run);
    run.algo.start();
    for (const [from, h, data] of run.early.splice(0)) {
      this.feed(run, from, h, data);
      this.pool.give(data);
    }
    this.settle(run);
  }

  private deadline(run: Running): NodeJS.Timeout {
    const t = setTimeout(() => {
      if (!this.runs.has(run.fp.seq) || this.failure) return;
      const msg = `no progress for ${this.opts.timeoutMs} ms, waiting for rank ${run.algo?.waitingFor()}`;
      // Ask the coordinator to find who stopped; fall back to our own view if it cannot answer.
      const report = `rank ${this.rank} during ${describe(run.fp)}: ${msg}`;
      this.coordinator.send(encodeControl(this.tag, FrameKind.stalled, { message: report }));
      setTimeout(() => this.fail(msg, true, run), 5_000).unref();
    }, this.opts.timeoutMs);
    t.unref();
    return t;
  }

  private send(run: Running, to: number, step: number, offset: number, data: Float32Array): void {
    const link = this.peers.get(to);
    const fp = run.fp;
    if (!link || this.failure) return;
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
    if (run.algo && run.sends === 0 && run.algo.done() && !this.failure) {
      clearTimeout(run.timer);
      run.resolve();
    }
  }

  private onData(from: number, h: FrameHeader, data: Buffer): void {
    const placed = this.takePlaced(from, data);
    if (this.failure) return;
    if (h.kind !== FrameKind.data) {
      return this.fail(`rank ${from} sent a ${h.kind} frame on a data link`, true);
    }
    const run = this.runs.get(h.seq);
    if (run?.algo) {
      this.feed(run, from, h, data);
      if (placed) this.pool.give(placed);
      return;
    }
    // Kept until the collective starts: the link reuses `data`'s memory unless it is a pool's.
    const kept = placed ?? this.pool.copy(data);
    if (run) {
      run.early.push([from, h, kept]);
      return;
    }
    if (h.seq < this.seq) {
      return this.fail(`rank ${from} sent a frame of finished collective #${h.seq}`, true);
    }
    const list = this.early.get(h.seq) ?? [];
    list.push([from, h, kept]);
    this.early.set(h.seq, list);
  }

  /** The pool buffer `data` was received into (see `place`), if it was. */
  private takePlaced(from: number, data: Buffer): Buffer | undefined {
    const placed = this.placedEarly.get(from);
    if (placed === undefined) return undefined;
    this.placedEarly.delete(from);
    return placed.buffer === data.buffer && placed.byteOffset === data.byteOffset
      ? placed
      : undefined;
  }

  /**
   * Where a data frame's payload may be received in place: for a collective not started yet, a
   * pool buffer to keep it in; for a running one, the part of its buffer the payload is copied to,
   * once the header matched the collective's fingerprint and schedule (a frame that does not is
   * received aside and refused as before).
   */
  private place(from: number, h: FrameHeader, bytes: number): Uint8Array | undefined {
    if (this.failure || h.kind !== FrameKind.data) return undefined;
    const run = this.runs.get(h.seq);
    if (!run?.algo && (run || h.seq >= this.seq)) {
      const b = this.pool.take(bytes);
      this.placedEarly.set(from, b);
      return b;
    }
    const algo = run?.algo;
    if (!run || !algo?.placement) return undefined;
    if (h.dtype !== WireDtype.float32 || bytes % 4 !== 0 || mismatch(run.fp, h) !== undefined) {
      return undefined;
    }
    const view = algo.placement(from, h.step, h.offset, bytes / 4);
    return view && new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  }

  private feed(run: Running, from: number, h: FrameHeader, data: Buffer): void {
    const algo = run.algo;
    if (!algo || this.failure) return;
    const diff = mismatch(run.fp, h);
    if (diff !== undefined) {
      const msg = `rank ${from} disagrees on the collective (theirs vs ours: ${diff})`;
      return this.fail(msg, true, run);
    }
    const bytes = data;
    const width = h.dtype === WireDtype.float16 ? 2 : 4;
    if (bytes.length % width !== 0) {
      const msg = `rank ${from} sent ${bytes.length} payload bytes, not whole elements`;
      return this.fail(msg, true, run);
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
      algo.receive(from, h.step, h.offset, values);
    } catch (e) {
      return this.fail(`bad frame from rank ${from}: ${(e as Error).message}`, true, run);
    }
    run.timer?.refresh();
    this.settle(run);
  }

  private onControl(h: FrameHeader, data: Buffer): void {
    if (this.initial.handles(h, data)) return;
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
    if (/\(1000 done\)/.test(why) && this.runs.size === 0) return; // it finished; fine while idle
    // A peer that failed because of another rank closes its links as it exits, and the
    // coordinator's abort naming the first failure is usually a moment behind: give it that moment
    // so every rank names the rank that failed first, not the one that left after it.
    setTimeout(() => this.fail(why, true), lostGraceMs).unref();
  }

  /** Fails the ring; `run` is the collective to name, by default the oldest one in flight. */
  private fail(message: string, report: boolean, run?: Running): void {
    if (this.failure || this.closed) return;
    const named =
      run ?? [...this.runs.values()].find((r) => r.algo) ?? this.runs.values().next().value;
    const where = named ? ` during ${describe(named.fp)}` : '';
    const err = new RingError(`rank ${this.rank}${where}: ${message}`, this.rank);
    this.failure = err;
    if (report)
      this.coordinator.send(encodeControl(this.tag, FrameKind.abort, { message: err.message }));
    for (const r of this.runs.values()) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    for (const reject of this.rejecters) reject(err);
    this.initial.fail(err);
    this.opts.onError?.(err);
  }
}

/** How long a lost link waits for the coordinator's abort before failing on its own. */
const lostGraceMs = 250;

/** Joins a job as `rank` of `worldSize`; see {@link RingOptions}. */
export function joinRing(options: RingOptions): Promise<Ring> {
  return Ring.join(options);
}
