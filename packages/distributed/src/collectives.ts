/**
 * The collectives a rank has in flight, and the data frames that reach them: each collective
 * starts once the ones it depends on are done, gets the frames carrying its sequence number (those
 * that come before it starts are kept, in pooled buffers), is fed them through its algorithm, and
 * fails when it makes no progress for the deadline.
 */
import type { Algorithm, Port } from './algorithm.js';
import { describe, type Fingerprint, mismatch } from './fingerprint.js';
import { encodeHeader, FrameKind, type FrameHeader, WireDtype } from './frame.js';
import { FramePool } from './frame_pool.js';
import { fromHalf, toHalf } from './half.js';
import type { Link } from './link.js';
import { overlaps, type Region } from './region.js';
import type { RingError } from './ring_error.js';

export interface Running {
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

/** What the collectives need of their ring. */
export interface RunsHost {
  readonly rank: number;
  readonly worldSize: number;
  /** The job's tag, carried by every frame. */
  readonly tag: number;
  readonly peers: Map<number, Link>;
  readonly timeoutMs: number;
  /** The next collective's sequence number. */
  sequence(): number;
  /** The failure that stopped the ring, if any. */
  error(): RingError | undefined;
  fail(message: string, report: boolean, run?: Running): void;
  lost(from: number, why: string): void;
  /** A collective passed its deadline: asks the coordinator to find who stopped. */
  stalled(report: string): void;
}

export class Collectives {
  private readonly runs = new Map<number, Running>();
  private inFlight: InFlight[] = [];
  private readonly early = new Map<number, [number, FrameHeader, Buffer][]>();
  /** Holds early frames' payloads (see FramePool). */
  private readonly pool = new FramePool();
  /** By peer: the pool buffer its link is receiving an early frame's payload into. */
  private readonly placedEarly = new Map<number, Buffer>();

  constructor(private readonly host: RunsHost) {}

  /** Settles once every collective in flight is done (successfully or not). */
  get idle(): Promise<unknown> {
    return Promise.all(this.inFlight.map((f) => f.done));
  }

  get size(): number {
    return this.runs.size;
  }

  /** The collective to name in a failure: the oldest one running, else the oldest waiting. */
  oldest(): Running | undefined {
    return [...this.runs.values()].find((r) => r.algo) ?? this.runs.values().next().value;
  }

  rejectAll(err: RingError): void {
    for (const r of this.runs.values()) {
      clearTimeout(r.timer);
      r.reject(err);
    }
  }

  /**
   * Starts the collective `fp` once `gate` (the barrier before it) and every collective in flight
   * whose buffer overlaps `region` are done; resolves when it is complete on this rank.
   */
  run(
    fp: Fingerprint,
    region: Region,
    gate: Promise<unknown>,
    make: (port: Port) => Algorithm,
  ): Promise<void> {
    const failure = this.host.error();
    if (failure) return Promise.reject(failure);
    const deps = [
      gate,
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
    const failure = this.host.error();
    if (failure) return run.reject(failure);
    const port: Port = {
      rank: this.host.rank,
      n: this.host.worldSize,
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
      if (!this.runs.has(run.fp.seq) || this.host.error()) return;
      const msg = `no progress for ${this.host.timeoutMs} ms, waiting for rank ${run.algo?.waitingFor()}`;
      // Ask the coordinator to find who stopped; fall back to our own view if it cannot answer.
      const report = `rank ${this.host.rank} during ${describe(run.fp)}: ${msg}`;
      this.host.stalled(report);
      setTimeout(() => this.host.fail(msg, true, run), 5_000).unref();
    }, this.host.timeoutMs);
    t.unref();
    return t;
  }

  private send(run: Running, to: number, step: number, offset: number, data: Float32Array): void {
    const link = this.host.peers.get(to);
    const fp = run.fp;
    if (!link || this.host.error()) return;
    const header = encodeHeader(this.host.tag, { kind: FrameKind.data, ...fp, step, offset });
    const payload =
      fp.dtype === WireDtype.float16
        ? new Uint8Array(toHalf(data).buffer)
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    run.sends++;
    link.send(header, payload, (err) => {
      run.sends--;
      if (err)
        this.host.lost(to, `rank ${to} closed its connection (sending failed: ${err.message})`);
      else this.settle(run);
    });
  }

  private settle(run: Running): void {
    if (run.algo && run.sends === 0 && run.algo.done() && !this.host.error()) {
      clearTimeout(run.timer);
      run.resolve();
    }
  }

  onData(from: number, h: FrameHeader, data: Buffer): void {
    const placed = this.takePlaced(from, data);
    if (this.host.error()) return;
    if (h.kind !== FrameKind.data) {
      return this.host.fail(`rank ${from} sent a ${h.kind} frame on a data link`, true);
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
    if (h.seq < this.host.sequence()) {
      return this.host.fail(`rank ${from} sent a frame of finished collective #${h.seq}`, true);
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
  place(from: number, h: FrameHeader, bytes: number): Uint8Array | undefined {
    if (this.host.error() || h.kind !== FrameKind.data) return undefined;
    const run = this.runs.get(h.seq);
    if (!run?.algo && (run || h.seq >= this.host.sequence())) {
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
    if (!algo || this.host.error()) return;
    const diff = mismatch(run.fp, h);
    if (diff !== undefined) {
      const msg = `rank ${from} disagrees on the collective (theirs vs ours: ${diff})`;
      return this.host.fail(msg, true, run);
    }
    const bytes = data;
    const width = h.dtype === WireDtype.float16 ? 2 : 4;
    if (bytes.length % width !== 0) {
      const msg = `rank ${from} sent ${bytes.length} payload bytes, not whole elements`;
      return this.host.fail(msg, true, run);
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
      return this.host.fail(`bad frame from rank ${from}: ${(e as Error).message}`, true, run);
    }
    run.timer?.refresh();
    this.settle(run);
  }
}
