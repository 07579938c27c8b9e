import type { TransferInfo, TransferProgress, TransferResult } from '../../events.js';
import { ProgressMeter, printable, printableLines, printableStack, resultLine, summaryLine } from './format.js';
import { JobProgress } from './job-progress.js';
import type { JobSummaryView, OutputRecord, Reporter, ReporterStreams } from './reporter.js';

/**
 * Plain lines for logs (CI): the job's progress at most every `intervalMs` on stderr, one result
 * line per transfer on stdout, warnings and errors on stderr. No control characters: those of
 * names and messages are escaped (`printable` in format.ts).
 */
export class PlainReporter implements Reporter {
  private readonly job: JobProgress;
  private lastLine: number;

  constructor(
    private readonly streams: ReporterStreams,
    private readonly options: { progress: boolean; results: boolean; warnings?: boolean; intervalMs?: number },
    private readonly now: () => number = () => performance.now(),
  ) {
    this.job = new JobProgress(new ProgressMeter(3000, now));
    this.lastLine = now();
  }

  onQueued(transfer: TransferInfo): void {
    this.job.onQueued(transfer);
  }

  onProgress(progress: TransferProgress): void {
    this.job.onProgress(progress);
    if (!this.options.progress || this.now() - this.lastLine < (this.options.intervalMs ?? 5000)) return;
    this.lastLine = this.now();
    this.streams.stderr.write(`${this.job.text()}\n`);
  }

  onDone(result: TransferResult): void {
    this.job.onDone(result);
    if (this.options.results) this.streams.stdout.write(`${resultLine(result)}\n`);
    for (const warning of result.warnings ?? []) this.warn(warning);
  }

  onFailed(): void {
    this.job.onFailed();
  }

  output(record: OutputRecord): void {
    if (this.options.results) this.streams.stdout.write(`${printableLines(record.text)}\n`);
  }

  warn(message: string): void {
    if (this.options.warnings === false) return;
    this.streams.stderr.write(`s3xfer: warning: ${printable(message)}\n`);
  }

  failure(message: string): void {
    this.streams.stderr.write(`s3xfer: error: ${printable(message)}\n`);
  }

  summary(summary: JobSummaryView): void {
    if (this.options.results) this.streams.stderr.write(`${summaryLine(summary)}\n`);
  }

  error(message: string, details: { stack?: string }): void {
    this.streams.stderr.write(`s3xfer: error: ${printable(message)}\n${details.stack ? `${printableStack(details.stack)}\n` : ''}`);
  }

  close(): void {}
}
