import prettyMilliseconds from 'pretty-ms';
import { formatBytes } from '../../config.js';
import type { TransferResult } from '../../events.js';
import type { JobSummaryView } from './reporter.js';

/**
 * What may not reach a line people read as it is: C0 and C1 controls and DEL (`\p{Cc}`: line
 * breaks, ESC, BS, TAB, NEL, …), the Unicode line and paragraph separators (U+2028, U+2029), the
 * bidi marks, embeddings, overrides and isolates (U+061C, U+200E, U+200F, U+202A–U+202E,
 * U+2066–U+2069), and lone surrogates. Everything else (é, 日本, emoji with their joiners,
 * combining marks) is printed as it is.
 */
const UNPRINTABLE = /[\p{Cc}\p{Zl}\p{Zp}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]|[\ud800-\udfff]/gu;
const SHORT_ESCAPES: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/**
 * Text made safe for a line people read (plain, terminal and GitHub Actions output; `ls`): each
 * character of {@link UNPRINTABLE} becomes a visible escape, `\n`, `\r` and `\t` for those three,
 * `\xHH` for the other controls up to U+00FF (ESC is `\x1b`), `\uHHHH` above (`\u2028`,
 * `\u202e`). A backslash is left as it is: Windows paths read as they are, and escaping twice
 * changes nothing. So `a\nb` may be a name with a line break or one with a backslash and an `n`:
 * the exact names are in the `--json` output. `##[` becomes `#\x23[`: the GitHub Actions runner
 * takes `##[command]` anywhere in a line for one of its legacy workflow commands.
 */
export function printable(text: string): string {
  return text
    .replace(UNPRINTABLE, (char) => {
      const short = SHORT_ESCAPES[char];
      if (short !== undefined) return short;
      const code = char.charCodeAt(0);
      return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
    })
    .replaceAll('##[', '#\\x23['); // the GitHub runner's legacy commands (`##[error]…`) start anywhere in a line
}

/** Lines people read, each made {@link printable}: a name's line break cannot start a line. */
export function printableLines(text: string | readonly string[]): string {
  return typeof text === 'string' ? printable(text) : text.map(printable).join('\n');
}

/**
 * A stack trace (`--debug`) made {@link printable}: a line break is kept only before a frame
 * (`    at …`) or a cause (`caused by: …`, see main.ts); any other, as in a message with a key's
 * line break in it, is escaped like the rest of the message.
 */
export function printableStack(stack: string): string {
  const lines: string[] = [];
  for (const line of stack.split('\n')) {
    if (lines.length === 0 || /^ +at |^caused by: /.test(line)) lines.push(line);
    else lines[lines.length - 1] += `\n${line}`;
  }
  return printableLines(lines);
}

/** `upload ./a.bin → s3://b/a.bin`, {@link printable} */
export function describeTransfer(t: { direction: string; source: string; destination: string }): string {
  return printable(`${t.direction} ${t.source} → ${t.destination}`);
}

/** `upload: ./a.bin → s3://b/a.bin  1.0 GiB in 5.2 s (197.0 MiB/s)`, {@link printable} */
export function resultLine(result: TransferResult): string {
  const rate = result.seconds > 0 ? ` (${formatBytes(Math.round(result.bytes / result.seconds))}/s)` : '';
  return printable(
    `${result.direction}: ${result.source} → ${result.destination}  ${formatBytes(result.bytes)} in ${result.seconds.toFixed(1)} s${rate}`,
  );
}

/** `12.0 MiB / 1.0 GiB (1%)  120.0 MiB/s  ETA 8s` */
export function progressText(total: number | undefined, meter: ProgressMeter): string {
  const done = meter.bytesDone;
  const percent = total ? ` (${Math.floor((done / total) * 100)}%)` : '';
  const rate = meter.rate();
  const eta = total && rate > 0 ? `  ETA ${prettyMilliseconds(Math.ceil((total - done) / rate) * 1000)}` : '';
  return `${formatBytes(done)} / ${total === undefined ? '?' : formatBytes(total)}${percent}  ${formatBytes(Math.round(rate))}/s${eta}`;
}

/** Bytes done and a rate over the last few seconds, for progress displays. */
export class ProgressMeter {
  bytesDone = 0;
  private readonly samples: Array<{ at: number; bytes: number }> = [];

  constructor(
    private readonly windowMs = 3000,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.samples.push({ at: this.now(), bytes: 0 });
  }

  add(delta: number): void {
    this.bytesDone += delta;
    const at = this.now();
    this.samples.push({ at, bytes: this.bytesDone });
    while (this.samples.length > 2 && at - this.samples[1]!.at > this.windowMs) this.samples.shift();
  }

  /** Bytes per second over the window. */
  rate(): number {
    const first = this.samples[0]!;
    const last = this.samples[this.samples.length - 1]!;
    const seconds = (last.at - first.at) / 1000;
    return seconds > 0 ? (last.bytes - first.bytes) / seconds : 0;
  }
}

/**
 * `12 files, 1.0 GiB in 5.2 s (196.9 MiB/s); 3 unchanged, 2 skipped, 1 failed, 4 deleted`, or for a
 * dry run `(dryrun) 12 files, 1.0 GiB to transfer, 4 to delete; nothing changed (0.3 s); 3 unchanged`
 */
export function summaryLine(s: JobSummaryView): string {
  const rate = s.seconds > 0 && s.bytes > 0 ? ` (${formatBytes(Math.round(s.bytes / s.seconds))}/s)` : '';
  const extras = [
    s.unchanged ? `${s.unchanged} unchanged` : '',
    s.skipped ? `${s.skipped} skipped` : '',
    s.failed ? `${s.failed} failed` : '',
    s.deleted ? `${s.deleted} deleted` : '',
    s.deleteFailed ? `${s.deleteFailed} not deleted` : '',
  ].filter(Boolean);
  const tail = extras.length ? `; ${extras.join(', ')}` : '';
  const files = (n: number, bytes: number) => `${n} file${n === 1 ? '' : 's'}, ${formatBytes(bytes)}`;
  if (s.dryRun) {
    const { transfers, bytes, deletes } = s.dryRun;
    const plan = [transfers ? `${files(transfers, bytes)} to transfer` : '', deletes ? `${deletes} to delete` : ''].filter(Boolean);
    return `(dryrun) ${plan.length ? plan.join(', ') : 'nothing to do'}; nothing changed (${s.seconds.toFixed(1)} s)${tail}`;
  }
  const moved = s.transferred === 0 && extras.length > 0 ? 'nothing transferred' : files(s.transferred, s.bytes);
  return `${moved} in ${s.seconds.toFixed(1)} s${rate}${tail}`;
}
