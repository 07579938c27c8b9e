import type { TransferInfo, TransferProgress, TransferResult } from '../../events.js';
import { describeTransfer, ProgressMeter, progressText, resultLine } from './format.js';
import type { Reporter, ReporterStreams } from './reporter.js';

/** Plain lines for logs (CI): progress at most every `intervalMs` on stderr, results on stdout. */
export class PlainReporter implements Reporter {
  private meter = new ProgressMeter();
  private lastLine = 0;

  constructor(
    private readonly streams: ReporterStreams,
    private readonly options: { progress: boolean; results: boolean; intervalMs?: number },
    private readonly now: () => number = () => performance.now(),
  ) {}

  onQueued(_transfer: TransferInfo): void {
    this.meter = new ProgressMeter();
    this.lastLine = this.now();
  }

  onProgress(progress: TransferProgress): void {
    this.meter.add(progress.bytesDelta);
    if (!this.options.progress || this.now() - this.lastLine < (this.options.intervalMs ?? 5000)) return;
    this.lastLine = this.now();
    this.streams.stderr.write(`${describeTransfer(progress.transfer)}  ${progressText(progress.transfer, this.meter)}\n`);
  }

  onDone(result: TransferResult): void {
    if (this.options.results) this.streams.stdout.write(`${resultLine(result)}\n`);
  }

  error(message: string, details: { stack?: string }): void {
    this.streams.stderr.write(`s3xfer: error: ${message}\n${details.stack ? `${details.stack}\n` : ''}`);
  }

  close(): void {}
}
