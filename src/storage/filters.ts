import picomatch from 'picomatch';
import { UsageError } from '../errors.js';

/** One `--exclude` or `--include` option, in command-line order. */
export interface FilterRule {
  type: 'exclude' | 'include';
  /** A pattern matched against the whole path relative to the source root (`/`-separated). */
  pattern: string;
}

/** Decides whether a relative path takes part in a directory command. */
export type PathFilter = (relative: string) => boolean;

/**
 * picomatch options that give the aws CLI's patterns (Python's `fnmatch`): `*` matches across `/`
 * (`bash`), dotfiles are ordinary (`dot`), `[!seq]` negates a set (`posix`), and `!`, braces and
 * extglobs have no special meaning.
 */
const FNMATCH_LIKE: picomatch.PicomatchOptions = {
  bash: true,
  dot: true,
  posix: true,
  nonegate: true,
  nobrace: true,
  noextglob: true,
  strictSlashes: true,
};

/**
 * A literal first segment put before every pattern and path, as the aws CLI joins both to the
 * source root. Without it, picomatch would never let a leading `*` match a `.` or `..` segment
 * (`--exclude '*'` would not exclude the key `../a`, and `rm --recursive` would delete it).
 */
const ROOT = 'root';

/**
 * Builds the filter of `--exclude`/`--include` with the aws CLI's semantics
 * (https://docs.aws.amazon.com/cli/latest/reference/s3/index.html, "Use of Exclude and Include
 * Filters"; awscli/customizations/s3/filters.py): every path is included by default; the rules
 * are applied in order and the last one that matches decides. Patterns match the whole path
 * relative to the source root (the aws CLI joins them to the root directory and matches the full
 * path with `fnmatch`), with `*` matching any characters including `/`, `?` one character, `[seq]`
 * and `[!seq]` one character in or not in `seq`; everything else is literal (parentheses and
 * backslashes too), and matching is case-sensitive. So `--exclude '*' --include '*.txt'` keeps
 * only `.txt` files, at any depth, and `--include '*.txt' --exclude '*'` keeps nothing.
 *
 * Differences from `fnmatch`, from picomatch: `?` and `[!seq]` never match `/`, and a `**` segment
 * also matches no directory at all (the pattern `**` + `/a` matches `a`). Like `fnmatch`, `*`
 * matches `.` and `..` segments too: keys such as `../a` are filtered like any other.
 *
 * @param rules In command-line order. Default: none, which includes everything.
 * @throws {UsageError} (`InvalidFilter`) for an empty pattern.
 */
export function createFilter(rules: readonly FilterRule[] = []): PathFilter {
  if (rules.length === 0) return () => true;
  const matchers = rules.map((rule) => {
    if (rule.pattern === '') throw new UsageError(`--${rule.type} needs a pattern`, 'InvalidFilter');
    // fnmatch has no escape character and no groups: make backslashes and parentheses literal.
    const pattern = rule.pattern.replace(/[\\()]/g, (c) => `\\${c}`);
    return { include: rule.type === 'include', matches: picomatch(`${ROOT}/${pattern}`, FNMATCH_LIKE) };
  });
  // The last matching rule wins: look from the end and stop at the first match.
  matchers.reverse();
  return (relative) => {
    const path = `${ROOT}/${relative}`;
    for (const { include, matches } of matchers) if (matches(path)) return include;
    return true;
  };
}
