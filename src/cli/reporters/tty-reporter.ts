import ora, { type Ora } from 'ora';
import type { TransferInfo, TransferProgress, TransferResult } from '../../events.js';
import { describeTransfer, ProgressMeter, progressText, resultLine } from './format.js';
import type { Reporter, ReporterStreams } from './reporter.js';

/** A terminal: an ora spinner on stderr with bytes, percent, rate and ETA; results on stdout. */
export class TtyReporter implements Reporter {
  private spinner: Ora | undefined;
  private meter = new ProgressMeter();
  private lastRender = 0;

  constructor(
    private readonly streams: ReporterStreams,
    private readonly showProgress: boolean,
  ) {}

  onQueued(transfer: TransferInfo): void {
    this.meter = new ProgressMeter();
    if (!this.showProgress) return;
    this.spinner = ora({ stream: this.streams.stderr as NodeJS.WritableStream, discardStdin: false, text: this.text(transfer) }).start();
  }

  onProgress(progress: TransferProgress): void {
    this.meter.add(progress.bytesDelta);
    const now = performance.now();
    if (!this.spinner || now - this.lastRender < 100) return;
    this.lastRender = now;
    this.spinner.text = this.text(progress.transfer);
  }

  onDone(result: TransferResult): void {
    this.stopSpinner();
    this.streams.stdout.write(`${resultLine(result)}\n`);
  }

  onFailed(): void {
    this.stopSpinner();
  }

  error(message: string, details: { stack?: string }): void {
    this.stopSpinner();
    this.streams.stderr.write(`s3xfer: error: ${message}\n${details.stack ? `${details.stack}\n` : ''}`);
  }

  close(): void {
    this.stopSpinner();
  }

  private text(transfer: TransferInfo): string {
    return `${describeTransfer(transfer)}  ${progressText(transfer, this.meter)}`;
  }

  private stopSpinner(): void {
    this.spinner?.stop();
    this.spinner = undefined;
  }
}
