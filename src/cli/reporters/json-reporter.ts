import type { TransferResult } from '../../events.js';
import type { Reporter, ReporterStreams } from './reporter.js';

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

  error(message: string, details: { code: string; exitCode: number; stack?: string }): void {
    const { code, exitCode, stack } = details;
    this.streams.stderr.write(`${JSON.stringify({ success: false, error: message, code, exitCode, ...(stack ? { stack } : {}) })}\n`);
  }

  close(): void {}
}
