import type { TransferInfo, TransferResult } from '../../events.js';
import type { JobSummaryView, OutputRecord, Reporter, ReporterStreams } from './reporter.js';

/**
 * `--json`: one JSON object per line on stdout, nothing else on it (the schema is in the README
 * and pinned by test/e2e/json-output.test.ts). Every record has a `type`:
 * - `transfer`: a finished (`success: true`) or failed (`success: false`, `error: {code, message}`)
 *   upload or download, with `operation`, `source`, `destination`, `bytes`, `etag`, `seconds`,
 *   `verified`, …;
 * - `skip`: a file or key a directory job did not transfer (`source`, `code`, `reason`);
 * - `delete`, `plan` (a `--dryrun` line), `object`, `prefix`, `bucket` (ls), `warning`, `error`
 *   (a failed line of `run`, a failed delete);
 * - `summary`, always last: `success`, `exitCode`, counts, bytes and seconds, and `error` when an
 *   error ended the command (which is also printed as one JSON object on stderr).
 */
export class JsonReporter implements Reporter {
  private readonly started = performance.now();
  private readonly counts = { transferred: 0, failed: 0, bytes: 0, skipped: 0, deleted: 0, deleteFailed: 0, unchanged: 0 };
  private jobSummary: JobSummaryView | undefined;
  private finalError: { code: string; message: string } | undefined;

  constructor(private readonly streams: ReporterStreams) {}

  onDone(result: TransferResult): void {
    const { direction, ...rest } = result;
    this.counts.transferred++;
    this.counts.bytes += result.bytes;
    this.line({ type: 'transfer', operation: direction, success: true, ...rest });
  }

  onFailed(transfer: TransferInfo, error: Error): void {
    this.counts.failed++;
    const code = (error as { code?: string }).code ?? 'Error';
    this.line({
      type: 'transfer',
      operation: transfer.direction,
      success: false,
      source: transfer.source,
      destination: transfer.destination,
      ...(transfer.totalBytes === undefined ? {} : { bytes: transfer.totalBytes }),
      error: { code, message: error.message },
    });
  }

  output(record: OutputRecord): void {
    // A lone `rm s3://b/key` has no job summary: its deletion is counted here.
    if (record.json.type === 'delete') this.counts.deleted++;
    this.line(record.json);
  }

  warn(message: string, record?: Record<string, unknown>): void {
    if (record?.type === 'skip') this.counts.skipped++;
    this.line(record?.type ? { ...record, message } : { type: 'warning', message });
  }

  failure(message: string, record?: Record<string, unknown>): void {
    // A failed transfer has its record already (onFailed); other failures get one here.
    if (record === undefined) return;
    if (record.type === 'delete') this.counts.deleteFailed++;
    const { code, type, ...rest } = record;
    this.line({ type: type ?? 'error', ...rest, success: false, error: { code: code ?? 'Error', message } });
  }

  summary(summary: JobSummaryView): void {
    this.jobSummary = summary;
  }

  error(message: string, details: { code: string; exitCode: number; stack?: string }): void {
    const { code, exitCode, stack } = details;
    this.finalError = { code, message };
    this.streams.stderr.write(`${JSON.stringify({ success: false, error: message, code, exitCode, ...(stack ? { stack } : {}) })}\n`);
  }

  finish(exitCode: number): void {
    const counts = this.jobSummary
      ? { ...this.counts, ...this.jobSummary, failed: Math.max(this.jobSummary.failed, this.counts.failed) }
      : { ...this.counts, seconds: (performance.now() - this.started) / 1000 };
    this.line({ type: 'summary', success: exitCode === 0, exitCode, ...counts, ...(this.finalError ? { error: this.finalError } : {}) });
  }

  close(): void {}

  private line(record: Record<string, unknown>): void {
    this.streams.stdout.write(`${JSON.stringify(record)}\n`);
  }
}
