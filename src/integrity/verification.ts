/**
 * One download's verification: the check chosen for the object, the digests of each pass over its
 * bytes (kept with the transfer, per part or range), the one re-fetch a mismatch earns, and the
 * verdict — verified, unverifiable (a warning, or an error under `require`) or corrupt.
 */
import type { ByteRange } from '../engine/part-plan.js';
import { IntegrityError } from '../errors.js';
import type { VerificationMethod } from '../events.js';
import {
  type Check,
  digestUnits,
  digestValue,
  downloadRangesFor,
  etagEncryption,
  type HashedFile,
  matchLayoutInFile,
  PassDigests,
  type VerificationPlan,
} from './checks.js';
import { describeLayout } from './layout.js';

/** What a verified (or knowingly unverified) download reports. */
export interface VerificationOutcome {
  verified: VerificationMethod | false;
  warnings: string[];
}

/** Response headers that tell whether an ETag stands for the MD5 of the bytes. */
export interface EncryptionHeaders {
  ServerSideEncryption?: string;
  SSECustomerAlgorithm?: string;
}

/**
 * Verifies one download. Create it from the plan, let the download fetch
 * {@link downloadRanges} feeding each pass's bytes to {@link startPass}'s digests, show it every
 * GET response ({@link inspect}), then ask for the verdict with {@link conclude}.
 */
export class DownloadVerification {
  private check: Check | undefined;
  private reason: string | undefined;
  private readonly passes: PassDigests[] = [];

  constructor(
    readonly plan: VerificationPlan,
    private readonly context: { source: string; destination?: string; size: number; require: boolean },
  ) {
    this.check = plan.check;
    this.reason = plan.reason;
  }

  /** The check in use, if any. */
  get method(): VerificationMethod | undefined {
    return this.check?.method;
  }

  /**
   * Fails a `require` download that cannot be verified; call before anything is written.
   * @throws {IntegrityError} code `Unverifiable`.
   */
  assertVerifiable(): void {
    if (!this.check && this.context.require) throw this.unverifiable(this.reason ?? 'no check applies');
  }

  /** The ranges to fetch, given the ones the download would use and whether it writes at offsets. */
  downloadRanges(planned: ByteRange[], positional: boolean): ByteRange[] {
    return this.check ? downloadRangesFor(this.check, this.context.size, planned, positional) : planned;
  }

  /**
   * Digests for one pass over `ranges` (the first download, or the re-fetch); with `file`, the
   * bytes fed must be in that file already, and worker threads hash them from there.
   */
  startPass(ranges: ByteRange[], file?: HashedFile): PassDigests | undefined {
    if (!this.check) return undefined;
    // Several ranges are fetched at once: their units' bytes arrive side by side.
    const pass = new PassDigests(this.check, digestUnits(this.check, this.context.size, ranges), file, ranges.length > 1);
    this.passes.push(pass);
    return pass;
  }

  /** Lets go of the digests in progress (the download failed); resolves once no hashing thread holds the file. */
  async release(): Promise<void> {
    await Promise.all(this.passes.map((pass) => pass.stop()));
  }

  /**
   * Looks at a GET response before its body is read: an ETag check is void when the object turns
   * out to be encrypted with SSE-KMS or SSE-C (a listing's ETag comes without these headers).
   * @throws {IntegrityError} code `Unverifiable` under `require`.
   */
  inspect(headers: EncryptionHeaders): void {
    const check = this.check;
    if (!check || (check.method !== 'md5-etag' && check.method !== 'multipart-etag')) return;
    const encryption = etagEncryption({
      serverSideEncryption: headers.ServerSideEncryption,
      sseCustomerAlgorithm: headers.SSECustomerAlgorithm,
    });
    if (!encryption) return;
    this.check = undefined;
    this.reason = `its ETag is not the MD5 of its bytes (${encryption})`;
    for (const pass of this.passes) void pass.stop();
    if (this.context.require) throw this.unverifiable(this.reason);
  }

  /**
   * The verdict after the download. A mismatch is fetched once more through `refetch` (which must
   * fetch every range again, feeding a new {@link startPass}): a transient corruption heals, a
   * lasting one fails. Without `refetch` (a device or pipe, written in place) a mismatch fails at
   * once. When the part layout was only guessed, the other guessed layouts are tried on the file at
   * `filePath`; if none fits and the bytes came out the same twice, the object is unverifiable
   * rather than corrupt.
   * @throws {IntegrityError} `ChecksumMismatch` with both digests, or `Unverifiable` under `require`.
   */
  async conclude(
    refetch: (() => Promise<void>) | undefined,
    filePath?: string,
    /** How a mismatch without `refetch` ends its message: what became of the bytes. */
    notFetchedAgain = ' (written in place to a device or pipe, so not fetched again)',
  ): Promise<VerificationOutcome> {
    const check = this.check;
    const first = this.passes[0];
    if (!check || !first)
      return { verified: false, warnings: [`${this.context.source} could not be verified: ${this.reason ?? 'no check applies'}`] };
    const firstDigests = await first.unitDigests();
    const firstValue = await digestValue(check, first.units, firstDigests);
    if (firstValue === check.expected) return { verified: check.method, warnings: [] };
    if (!refetch) throw this.mismatch(check, firstValue, notFetchedAgain);

    await refetch();
    const second = this.passes[this.passes.length - 1]!;
    if (second === first) throw new Error('refetch did not start a new pass');
    const secondDigests = await second.unitDigests();
    const secondValue = await digestValue(check, second.units, secondDigests);
    if (secondValue === check.expected) {
      return {
        verified: check.method,
        warnings: [
          `${this.context.source}: the first download did not match the object's ${check.label} (got ${firstValue}); fetched again and verified`,
        ],
      };
    }
    if (!check.certain && filePath && (await matchLayoutInFile(filePath, check, this.plan.alternatives, this.context.size))) {
      return { verified: check.method, warnings: [] };
    }
    const changed = firstDigests.flatMap((d, i) => (secondDigests[i] && d.equals(secondDigests[i]!) ? [] : [i + 1]));
    if (!check.certain && changed.length === 0) {
      const tried = [check.layout!, ...this.plan.alternatives].map(describeLayout).join('; ');
      const why =
        `its ${check.label.replace(/ \(.*$/, '')} matches none of the part layouts tried (${tried}), ` +
        `and two downloads gave the same bytes: it was probably uploaded in parts of other sizes`;
      if (this.context.require) throw this.unverifiable(why);
      return { verified: false, warnings: [`${this.context.source} could not be verified: ${why}`] };
    }
    const unit = check.shape === 'parts' ? 'part' : 'range';
    throw this.mismatch(
      check,
      secondValue,
      changed.length === 0
        ? ' (the same bytes in two downloads)'
        : ` (fetched twice, the first time ${firstValue}; ${unit}s that differed between the two: ${summarise(changed)})`,
    );
  }

  /** `ending`: what follows the digests in the message (a parenthesised detail, or a consequence). */
  private mismatch(check: Check, actual: string, ending: string): IntegrityError {
    return new IntegrityError(
      `${this.context.source}: the downloaded bytes do not match the object's ${check.label}: expected ${check.expected}, got ${actual}${ending}`,
      'ChecksumMismatch',
      { source: this.context.source, destination: this.context.destination },
    );
  }

  private unverifiable(why: string): IntegrityError {
    return new IntegrityError(`${this.context.source} cannot be verified (verify: require): ${why}`, 'Unverifiable', {
      source: this.context.source,
      destination: this.context.destination,
    });
  }
}

function summarise(numbers: number[]): string {
  const shown = numbers.slice(0, 10).join(', ');
  return numbers.length > 10 ? `${shown} and ${numbers.length - 10} more` : shown;
}
