/** What a progress display shows after each step. */
export interface ProgressState {
  optimizer: string;
  epoch: number;
  epochs: number;
  /** Steps done in this epoch, of `stepsPerEpoch`. */
  stepInEpoch: number;
  stepsPerEpoch: number;
  loss: number;
  imagesPerSecond: number;
  /** Seconds left for the whole run, or undefined before there is a rate to go by. */
  etaSeconds: number | undefined;
  /**
   * Seconds of work that come after this run in the command that started it (more runs of a
   * study): shown as the whole command's ETA beside the run's. Absent: this run is all.
   */
  afterSeconds?: number;
}

export type ProgressMode = 'tty' | 'lines' | 'none';

/**
 * On a terminal, one line redrawn in place (a bar, loss, img/s, ETA) at most 10 times a second;
 * otherwise a plain line every `intervalSeconds`, so logs stay readable.
 */
export class Progress {
  private lastDraw = -Infinity;
  private drawn = false;

  constructor(
    readonly mode: ProgressMode,
    private readonly write: (text: string) => void,
    private readonly intervalSeconds = 30,
  ) {}

  /** 'tty' on a terminal (or under a launcher that says its own output is one), else 'lines'. */
  static modeFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): ProgressMode {
    return stream.isTTY === true || env['THOR_TS_TTY'] === '1' ? 'tty' : 'lines';
  }

  /**
   * The seconds of work after this run that a command launching several runs passes its workers
   * as THOR_TS_ETA_AFTER (see {@link ProgressState.afterSeconds}); undefined when it is not set.
   */
  static afterFrom(env: NodeJS.ProcessEnv = process.env): number | undefined {
    const text = env['THOR_TS_ETA_AFTER'];
    const seconds = Number(text);
    return text === undefined || text.trim() === '' || !(seconds >= 0) ? undefined : seconds;
  }

  update(s: ProgressState): void {
    if (this.mode === 'none') return;
    const now = performance.now();
    const last = s.stepInEpoch === s.stepsPerEpoch;
    if (this.mode === 'tty') {
      if (!last && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      this.drawn = true;
      this.write(`\r${formatProgress(s, true)}\x1b[K`);
    } else if (now - this.lastDraw >= this.intervalSeconds * 1e3) {
      this.lastDraw = now;
      this.write(`${formatProgress(s, false)}\n`);
    }
  }

  /** Ends the redrawn line before other output. */
  finishLine(): void {
    if (this.drawn) this.write('\n');
    this.drawn = false;
  }
}

export function formatProgress(s: ProgressState, bar: boolean): string {
  const width = 24;
  const done = s.stepsPerEpoch > 0 ? s.stepInEpoch / s.stepsPerEpoch : 1;
  const filled = Math.round(done * width);
  const head = `${s.optimizer} epoch ${s.epoch}/${s.epochs}`;
  const where = bar
    ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${s.stepInEpoch}/${s.stepsPerEpoch}`
    : `step ${s.stepInEpoch}/${s.stepsPerEpoch}`;
  const eta = s.etaSeconds === undefined ? '?' : formatDuration(s.etaSeconds);
  const all =
    s.afterSeconds === undefined
      ? ''
      : `, all ${s.etaSeconds === undefined ? '?' : formatDuration(s.etaSeconds + s.afterSeconds)}`;
  return (
    `${head} ${where} loss ${s.loss.toFixed(4)} ${s.imagesPerSecond.toFixed(1)} img/s ` +
    `ETA ${eta}${all}`
  );
}

/** 75 → '1m15s', 3725 → '1h02m05s'. */
export function formatDuration(seconds: number): string {
  const t = Math.max(0, Math.round(seconds));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = t % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (h > 0) return `${h}h${pad(m)}m${pad(s)}s`;
  if (m > 0) return `${m}m${pad(s)}s`;
  return `${s}s`;
}
