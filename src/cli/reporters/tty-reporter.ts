import ora, { type Ora } from 'ora';
import type { TransferInfo, TransferProgress, TransferResult } from '../../events.js';
import { printable, printableLines, printableStack, resultLine, summaryLine } from './format.js';
import { JobProgress } from './job-progress.js';
import type { JobSummaryView, OutputRecord, Reporter, ReporterStreams } from './reporter.js';

/**
 * A terminal: one ora spinner on stderr for the whole job (one transfer: its bytes, percent, rate
 * and ETA; many: files done of those known so far, and the same for bytes), result lines on stdout.
 */
export class TtyReporter implements Reporter {
  private spinner: Ora | undefined;
  private readonly job = new JobProgress();
  private lastRender = 0;

  constructor(
    private readonly streams: ReporterStreams,
    private readonly showProgress: boolean,
    private readonly results = true,
  ) {}

  onQueued(transfer: TransferInfo): void {
    this.job.onQueued(transfer);
    if (!this.showProgress) return;
    this.spinner ??= ora({ stream: this.streams.stderr as NodeJS.WritableStream, discardStdin: false }).start();
    this.render(true);
  }

  onProgress(progress: TransferProgress): void {
    this.job.onProgress(progress);
    this.render(false);
  }

  onDone(result: TransferResult): void {
    this.job.onDone(result);
    // Lines printed above the spinner: clear it, print, let the next render redraw it.
    this.spinner?.clear();
    this.streams.stdout.write(`${resultLine(result)}\n`);
    for (const warning of result.warnings ?? []) this.streams.stderr.write(`s3xfer: warning: ${printable(warning)}\n`);
    this.render(true);
  }

  onFailed(): void {
    this.job.onFailed();
    this.render(true);
  }

  output(record: OutputRecord): void {
    this.spinner?.clear();
    if (this.results) this.streams.stdout.write(`${printableLines(record.text)}\n`);
    this.render(true);
  }

  warn(message: string): void {
    this.spinner?.clear();
    this.streams.stderr.write(`s3xfer: warning: ${printable(message)}\n`);
    this.render(true);
  }

  failure(message: string): void {
    this.spinner?.clear();
    this.streams.stderr.write(`s3xfer: error: ${printable(message)}\n`);
    this.render(true);
  }

  summary(summary: JobSummaryView): void {
    this.spinner?.clear();
    if (this.results) this.streams.stderr.write(`${summaryLine(summary)}\n`);
  }

  error(message: string, details: { stack?: string }): void {
    this.stopSpinner();
    this.streams.stderr.write(`s3xfer: error: ${printable(message)}\n${details.stack ? `${printableStack(details.stack)}\n` : ''}`);
  }

  close(): void {
    this.stopSpinner();
  }

  private render(force: boolean): void {
    const now = performance.now();
    if (!this.spinner || (!force && now - this.lastRender < 100)) return;
    this.lastRender = now;
    this.spinner.text = this.job.text();
  }

  private stopSpinner(): void {
    this.spinner?.stop();
    this.spinner = undefined;
  }
}
