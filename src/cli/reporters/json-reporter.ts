import type { TransferResult } from '../../events.js';
import type { JobSummaryView, OutputRecord, Reporter, ReporterStreams } from './reporter.js';

/**
 * One JSON object per line: results on stdout, the error on stderr (as s5cmd's --json does).
 * `{"operation":"upload","success":true,"source":…,"destination":…,"bytes":…,…}`
 */
export class JsonReporter implements Reporter {
  constructor(private readonly streams: ReporterStreams) {}

  onDone(result: TransferResult): void {
    const { direction, ...rest } = result;
    this.streams.stdout.write(`${JSON.stringify({ operation: direction, success: true, ...rest })}\n`);
  }

  output(record: OutputRecord): void {
    this.line(record.json);
  }

  warn(message: string, record?: Record<string, unknown>): void {
    this.line({ ...record, warning: message });
  }

  failure(message: string, record?: Record<string, unknown>): void {
    this.line({ ...record, success: false, error: message });
  }

  summary(summary: JobSummaryView): void {
    this.line({ operation: 'summary', ...summary });
  }

  private line(record: Record<string, unknown>): void {
    this.streams.stdout.write(`${JSON.stringify(record)}\n`);
  }

  error(message: string, details: { code: string; exitCode: number; stack?: string }): void {
    const { code, exitCode, stack } = details;
    this.streams.stderr.write(`${JSON.stringify({ success: false, error: message, code, exitCode, ...(stack ? { stack } : {}) })}\n`);
  }

  close(): void {}
}
