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
  /** Transfers queued whose size is not known (stdin), by {@link sizelessKey}: the total is unknown until they end. */
  private readonly sizeless = new Map<string, number>();
  private last: TransferInfo | undefined;

  constructor(readonly meter: ProgressMeter = new ProgressMeter()) {}

  onQueued(transfer: TransferInfo): void {
    this.filesQueued++;
    if (transfer.totalBytes === undefined) {
      const key = sizelessKey(transfer);
      this.sizeless.set(key, (this.sizeless.get(key) ?? 0) + 1);
    } else {
      this.bytesQueued += transfer.totalBytes;
    }
    this.last = transfer;
  }

  onProgress(progress: TransferProgress): void {
    this.meter.add(progress.bytesDelta);
  }

  onDone(result: TransferResult): void {
    this.filesDone++;
    this.settle(result, result.bytes);
  }

  onFailed(transfer?: TransferInfo): void {
    this.filesFailed++;
    if (transfer) this.settle(transfer, 0);
  }

  /** A transfer of unknown size that ended: its bytes are known now. */
  private settle(transfer: Pick<TransferInfo, 'direction' | 'source' | 'destination'>, bytes: number): void {
    const key = sizelessKey(transfer);
    const count = this.sizeless.get(key);
    if (count === undefined) return;
    if (count <= 1) this.sizeless.delete(key);
    else this.sizeless.set(key, count - 1);
    this.bytesQueued += bytes;
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
    const bytes = progressText(this.sizeless.size > 0 ? undefined : this.bytesQueued, this.meter);
    if (this.filesQueued <= 1 && this.last) return `${describeTransfer(this.last)}  ${bytes}`;
    const failed = this.filesFailed > 0 ? `, ${this.filesFailed} failed` : '';
    return `${this.filesDone}/${this.filesQueued} files${failed}  ${bytes}`;
  }
}

function sizelessKey(transfer: Pick<TransferInfo, 'direction' | 'source' | 'destination'>): string {
  return `${transfer.direction}\0${transfer.source}\0${transfer.destination}`;
}
