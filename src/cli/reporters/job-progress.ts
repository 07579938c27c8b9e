import type { TransferInfo, TransferProgress, TransferResult, TransferSubscriber } from '../../events.js';
import { describeTransfer, ProgressMeter, progressText } from './format.js';

/**
 * A job of one or many transfers as the progress displays see it: files done of those known so
 * far, bytes done of the bytes known so far, a recent rate and an ETA.
 */
export class JobProgress implements TransferSubscriber {
  filesQueued = 0;
  filesDone = 0;
  filesFailed = 0;
  bytesQueued = 0;
  private last: TransferInfo | undefined;

  constructor(readonly meter: ProgressMeter = new ProgressMeter()) {}

  onQueued(transfer: TransferInfo): void {
    this.filesQueued++;
    this.bytesQueued += transfer.totalBytes ?? 0;
    this.last = transfer;
  }

  onProgress(progress: TransferProgress): void {
    this.meter.add(progress.bytesDelta);
  }

  onDone(_result: TransferResult): void {
    this.filesDone++;
  }

  onFailed(): void {
    this.filesFailed++;
  }

  /** Whether anything has been queued yet. */
  get started(): boolean {
    return this.last !== undefined;
  }

  /**
   * `upload ./a.bin → s3://b/a.bin  12.0 MiB / 1.0 GiB (1%)  120.0 MiB/s  ETA 8s` for one transfer,
   * `3/10 files  12.0 MiB / 1.0 GiB (1%)  120.0 MiB/s  ETA 8s` for many.
   */
  text(): string {
    const bytes = progressText(this.bytesQueued, this.meter);
    if (this.filesQueued <= 1 && this.last) return `${describeTransfer(this.last)}  ${bytes}`;
    const failed = this.filesFailed > 0 ? `, ${this.filesFailed} failed` : '';
    return `${this.filesDone}/${this.filesQueued} files${failed}  ${bytes}`;
  }
}
