import prettyMilliseconds from 'pretty-ms';
import { formatBytes } from '../../config.js';
import type { TransferResult } from '../../events.js';

/** `upload ./a.bin → s3://b/a.bin` */
export function describeTransfer(t: { direction: string; source: string; destination: string }): string {
  return `${t.direction} ${t.source} → ${t.destination}`;
}

/** `upload: ./a.bin → s3://b/a.bin  1.0 GiB in 5.2 s (197.0 MiB/s)` */
export function resultLine(result: TransferResult): string {
  const rate = result.seconds > 0 ? ` (${formatBytes(Math.round(result.bytes / result.seconds))}/s)` : '';
  return `${result.direction}: ${result.source} → ${result.destination}  ${formatBytes(result.bytes)} in ${result.seconds.toFixed(1)} s${rate}`;
}

/** `12.0 MiB / 1.0 GiB (1%)  120.0 MiB/s  ETA 8s` */
export function progressText(total: number | undefined, meter: ProgressMeter): string {
  const done = meter.bytesDone;
  const percent = total ? ` (${Math.floor((done / total) * 100)}%)` : '';
  const rate = meter.rate();
  const eta = total && rate > 0 ? `  ETA ${prettyMilliseconds(Math.ceil((total - done) / rate) * 1000)}` : '';
  return `${formatBytes(done)} / ${total === undefined ? '?' : formatBytes(total)}${percent}  ${formatBytes(Math.round(rate))}/s${eta}`;
}

/** Bytes done and a rate over the last few seconds, for progress displays. */
export class ProgressMeter {
  bytesDone = 0;
  private readonly samples: Array<{ at: number; bytes: number }> = [];

  constructor(
    private readonly windowMs = 3000,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.samples.push({ at: this.now(), bytes: 0 });
  }

  add(delta: number): void {
    this.bytesDone += delta;
    const at = this.now();
    this.samples.push({ at, bytes: this.bytesDone });
    while (this.samples.length > 2 && at - this.samples[1]!.at > this.windowMs) this.samples.shift();
  }

  /** Bytes per second over the window. */
  rate(): number {
    const first = this.samples[0]!;
    const last = this.samples[this.samples.length - 1]!;
    const seconds = (last.at - first.at) / 1000;
    return seconds > 0 ? (last.bytes - first.bytes) / seconds : 0;
  }
}

/** `12 files, 1.0 GiB in 5.2 s (196.9 MiB/s); 3 unchanged, 2 skipped, 1 failed, 4 deleted` */
export function summaryLine(s: {
  transferred: number;
  bytes: number;
  seconds: number;
  failed: number;
  skipped: number;
  deleted: number;
  deleteFailed: number;
  unchanged: number;
}): string {
  const rate = s.seconds > 0 && s.bytes > 0 ? ` (${formatBytes(Math.round(s.bytes / s.seconds))}/s)` : '';
  const extras = [
    s.unchanged ? `${s.unchanged} unchanged` : '',
    s.skipped ? `${s.skipped} skipped` : '',
    s.failed ? `${s.failed} failed` : '',
    s.deleted ? `${s.deleted} deleted` : '',
    s.deleteFailed ? `${s.deleteFailed} not deleted` : '',
  ].filter(Boolean);
  const files = `${s.transferred} file${s.transferred === 1 ? '' : 's'}, ${formatBytes(s.bytes)}`;
  const moved = s.transferred === 0 && extras.length > 0 ? 'nothing transferred' : files;
  return `${moved} in ${s.seconds.toFixed(1)} s${rate}${extras.length ? `; ${extras.join(', ')}` : ''}`;
}
