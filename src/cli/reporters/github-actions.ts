import { appendFileSync } from 'node:fs';
import { formatBytes } from '../../config.js';
import type { TransferInfo, TransferProgress, TransferResult } from '../../events.js';
import { printable } from './format.js';
import type { JobSummaryView, OutputRecord, Reporter } from './reporter.js';

/**
 * Workflow-command escaping: the runner reads one line per command. The text is {@link printable}
 * first (a key's line break shows as `\n`, as on the lines the inner reporter prints), so no CR or
 * LF is left for `%0D`/`%0A`; they stay escaped all the same.
 */
function escapeData(text: string): string {
  return printable(text).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/**
 * Under GitHub Actions (`GITHUB_ACTIONS=true`): whatever the inner reporter prints, plus each
 * failure as an `::error::` annotation (shown on the run's page) and, at the end, a Markdown
 * summary of the job appended to `$GITHUB_STEP_SUMMARY`. Annotations go to `annotations`, which
 * is stdout unless stdout is reserved (`--json`, or data with `cp s3://… -`).
 */
export class GithubActionsReporter implements Reporter {
  private readonly failures: string[] = [];
  private counts = { transferred: 0, bytes: 0, failed: 0, skipped: 0 };
  private job: JobSummaryView | undefined;
  private readonly started = performance.now();

  constructor(
    private readonly inner: Reporter,
    private readonly annotations: NodeJS.WritableStream,
    private readonly options: { command: string; summaryFile?: string },
  ) {}

  onQueued(transfer: TransferInfo): void {
    this.inner.onQueued?.(transfer);
  }

  onProgress(progress: TransferProgress): void {
    this.inner.onProgress?.(progress);
  }

  onDone(result: TransferResult): void {
    this.counts.transferred++;
    this.counts.bytes += result.bytes;
    this.inner.onDone?.(result);
    for (const warning of result.warnings ?? []) this.annotate('warning', warning);
  }

  onFailed(transfer: TransferInfo, error: Error): void {
    this.counts.failed++;
    this.inner.onFailed?.(transfer, error);
    this.annotate('error', `${transfer.direction} ${transfer.source} → ${transfer.destination}: ${error.message}`);
  }

  output(record: OutputRecord): void {
    this.inner.output(record);
  }

  warn(message: string, record?: Record<string, unknown>): void {
    if (record?.type === 'skip') this.counts.skipped++;
    this.inner.warn(message, record);
    this.annotate('warning', message);
  }

  failure(message: string, record?: Record<string, unknown>): void {
    this.inner.failure(message, record);
    // Failed transfers were annotated by onFailed already.
    if (record !== undefined) this.annotate('error', message);
  }

  summary(summary: JobSummaryView): void {
    this.job = summary;
    this.inner.summary(summary);
  }

  error(message: string, details: { code: string; exitCode: number; stack?: string }): void {
    this.inner.error(message, details);
    // A failed transfer that ends the command was annotated by onFailed already.
    if (!this.failures.some((failure) => failure.endsWith(message))) this.annotate('error', message);
  }

  finish(exitCode: number): void {
    this.inner.finish?.(exitCode);
    if (!this.options.summaryFile) return;
    const s = this.job ?? { ...this.counts, deleted: 0, deleteFailed: 0, unchanged: 0, seconds: (performance.now() - this.started) / 1000 };
    const rows = [
      ['result', exitCode === 0 ? '✅ success' : `❌ exit code ${exitCode}`],
      ['files transferred', String(s.transferred)],
      ['bytes', formatBytes(s.bytes)],
      ['time', `${s.seconds.toFixed(1)} s`],
      ...(s.failed ? [['failed', String(s.failed)]] : []),
      ...(s.skipped ? [['skipped', String(s.skipped)]] : []),
      ...(s.unchanged ? [['unchanged', String(s.unchanged)]] : []),
      ...(s.deleted ? [['deleted', String(s.deleted)]] : []),
    ];
    const table = rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n');
    const shown = this.failures.slice(0, 20).map((f) => `- ${printable(f)}`);
    const more = this.failures.length > 20 ? [`- … and ${this.failures.length - 20} more`] : [];
    const failures = shown.length ? `\n\n**Failures**\n\n${[...shown, ...more].join('\n')}` : '';
    try {
      // A name with a line break (a key may have one) must not end the heading or a list item early.
      const heading = `### s3xfer ${printable(this.options.command)}`;
      appendFileSync(this.options.summaryFile, `${heading}\n\n| | |\n|---|---|\n${table}${failures}\n\n`);
    } catch {
      // A step summary that cannot be written must not change the command's outcome.
    }
  }

  close(): void {
    this.inner.close();
  }

  private annotate(level: 'error' | 'warning', message: string): void {
    if (level === 'error') this.failures.push(message);
    this.annotations.write(`::${level} title=s3xfer::${escapeData(message)}\n`);
  }
}
