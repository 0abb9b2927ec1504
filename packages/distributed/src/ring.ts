/**
 * A worker's membership in a job: the collectives (all-reduce, all-gather, broadcast, barrier)
 * over authenticated WebSocket links to its peers. Collectives get sequence numbers in call order
 * and run concurrently unless their buffers overlap (then the later one waits); frames are routed
 * by sequence number, so every collective reduces in its own fixed order.
 */
import { chunkBounds } from './algorithm.js';
import { BroadcastSchedule } from './broadcast_schedule.js';
import { Collectives, type Running } from './collectives.js';
import { type Coordinator, startCoordinator } from './coordinator.js';
import { describe, type Fingerprint } from './fingerprint.js';
import {
  CollectiveOp,
  decodeControl,
  encodeControl,
  FrameKind,
  type FrameHeader,
  jobTag,
  WireDtype,
} from './frame.js';
import { roundToHalf } from './half.js';
import { HalvingDoubling } from './halving_doubling.js';
import type { Link, Listener, Log, Transport } from './link.js';
import { InitialWeights } from './initial_weights.js';
import { GradientReducer, type ReducerOptions } from './reducer.js';
import { regionOf } from './region.js';
import { join } from './rendezvous.js';
import { RingError } from './ring_error.js';
import { RingSchedule } from './ring_schedule.js';
import { SimdSum } from './simd_sum.js';

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
  /**
   * Peers on the same machine (same boot, network and mount namespaces) connect over a Unix
   * domain socket in a private temporary directory rather than TCP loopback: the same handshake
   * and frames for about half the CPU time per byte. Default true; false keeps every link on TCP.
   */
  unixSockets?: boolean;
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

export class Ring {
  readonly rank: number;
  readonly worldSize: number;
  private readonly tag: number;
  private seq = 0;
  private barriers = 0;
  /** Settles when the last barrier did: collectives called after a barrier start after it. */
  private gate: Promise<unknown> = Promise.resolve();
  private readonly runs: Collectives;
  private readonly released = new Map<number, () => void>();
  private failure: RingError | undefined;
  private closed = false;
  private readonly rejecters = new Set<(e: RingError) => void>();
  private hosted: Coordinator | undefined;
  private readonly initial: InitialWeights;
  /** The reduce-scatter's additions in wasm SIMD, where available. */
  private readonly sum: SimdSum | undefined;

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
    this.sum = SimdSum.create(opts.segmentBytes);
    this.runs = new Collectives({
      rank: opts.rank,
      worldSize: opts.worldSize,
      tag: this.tag,
      peers,
      timeoutMs: opts.timeoutMs,
      sequence: () => this.seq,
      error: () => this.failure,
      fail: (message, report, run) => this.fail(message, report, run),
      lost: (from, why) => this.onLost(from, why),
      stalled: (report) =>
        coordinator.send(encodeControl(this.tag, FrameKind.stalled, { message: report })),
    });
    for (const [r, link] of peers) {
      link.listen({
        frame: (h, data) => this.runs.onData(r, h, data),
        lost: (why) => this.onLost(r, why),
        place: (h, bytes) => this.runs.place(r, h, bytes),
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
      unixSockets: opts.unixSockets ?? true,
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
    return this.runs
      .run(fp, regionOf(buf), this.gate, (port) =>
        small
          ? new HalvingDoubling(port, buf, finish)
          : new RingSchedule(port, buf, {
              bounds: (c) => chunkBounds(buf.length, n, c),
              reduceSteps: n - 1,
              segElems: this.segElems(buf.length),
              finish,
              sum: this.sum,
            }),
      )
      .then(() => buf);
  }

  /** Every rank's `local` (same length everywhere), concatenated in rank order. */
  allGather(local: Float32Array, bucket = 0): Promise<Float32Array> {
    const len = local.length;
    const out = new Float32Array(len * this.worldSize);
    out.set(local, this.rank * len);
    return this.runs
      .run(
        this.fingerprint(CollectiveOp.allGather, bucket, len, WireDtype.float32),
        regionOf(out),
        this.gate,
        (port) =>
          new RingSchedule(port, out, {
            bounds: (c) => [c * len, (c + 1) * len],
            reduceSteps: 0,
            segElems: this.segElems(len),
            finish: () => undefined,
          }),
      )
      .then(() => out);
  }

  /** Overwrites `buf` on every rank with the root's; resolves with `buf`. */
  broadcast(buf: Float32Array, root = 0, bucket = 0): Promise<Float32Array> {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) {
      throw new Error(`broadcast: expected a root rank below ${this.worldSize}, got ${root}`);
    }
    return this.runs
      .run(
        this.fingerprint(CollectiveOp.broadcast, bucket, buf.length, WireDtype.float32),
        regionOf(buf),
        this.gate,
        (port) => new BroadcastSchedule(port, buf, root, this.segElems(buf.length)),
      )
      .then(() => buf);
  }

  /**
   * Resolves once every rank has called `barrier()` as often as this one. Waits for the
   * collectives called before it; those called after it start once it is released.
   */
  barrier(): Promise<void> {
    const id = this.barriers++;
    const before = [this.gate, this.runs.idle];
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

  /** By peer rank: whether its link runs on TCP or on a Unix socket (a peer on this machine). */
  get transports(): Map<number, Transport> {
    return new Map([...this.peers].map(([r, link]) => [r, link.transport]));
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
    await Promise.all([this.gate, this.runs.idle]);
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
    const named = run ?? this.runs.oldest();
    const where = named ? ` during ${describe(named.fp)}` : '';
    const err = new RingError(`rank ${this.rank}${where}: ${message}`, this.rank);
    this.failure = err;
    if (report)
      this.coordinator.send(encodeControl(this.tag, FrameKind.abort, { message: err.message }));
    this.runs.rejectAll(err);
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
