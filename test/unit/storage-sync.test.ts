import { describe, expect, it } from 'vitest';
import { S3xferError } from '../../src/errors.js';
import {
  type CompareOptions,
  compareListings,
  createFilter,
  type SkippedEntry,
  type StorageEntry,
  type SyncDecision,
} from '../../src/storage/index.js';

const T = Date.UTC(2024, 0, 1);
const file = (relative: string, size = 1, mtimeMs = T, extra: Partial<StorageEntry> = {}): StorageEntry => ({
  kind: 'file',
  relative,
  size,
  mtimeMs,
  ...extra,
});
const skipped = (relative: string, directory = false, code: SkippedEntry['code'] = 'Unreadable'): SkippedEntry => ({
  kind: 'skip',
  relative,
  path: `/src/${relative}`,
  directory,
  code,
  reason: 'permission denied',
  warning: true,
});

async function* stream<T>(items: T[], pulled?: string[]): AsyncGenerator<T> {
  for (const item of items) {
    pulled?.push((item as { relative: string }).relative);
    yield item;
  }
}

async function decide(source: Array<StorageEntry | SkippedEntry>, destination: StorageEntry[], options: CompareOptions) {
  const decisions: SyncDecision[] = [];
  for await (const decision of compareListings(stream(source), stream(destination), options)) decisions.push(decision);
  return decisions;
}
const summary = (decisions: SyncDecision[]) => decisions.map((d) => `${d.action} ${d.relative} (${d.reason})`);

describe('compareListings merges two sorted listings', () => {
  it('copies what only the source has, leaves what only the destination has, compares the rest', async () => {
    const decisions = await decide([file('a'), file('b', 2), file('c')], [file('b', 3), file('c'), file('d')], { direction: 'upload' });
    expect(summary(decisions)).toEqual(['copy a (missing-at-destination)', 'copy b (size-differs)', 'skip-same c (same)']);
    expect(decisions[1]).toMatchObject({ source: { size: 2 }, destination: { size: 3 } });
    expect(decisions[0]!.destination).toBeUndefined();
  });

  it('deletes what only the destination has with deleteExtra, at any position', async () => {
    const decisions = await decide([file('b'), file('d')], [file('a'), file('b'), file('c'), file('e'), file('f')], {
      direction: 'download',
      deleteExtra: true,
    });
    expect(summary(decisions)).toEqual([
      'delete a (not-at-source)',
      'skip-same b (same)',
      'delete c (not-at-source)',
      'copy d (missing-at-destination)',
      'delete e (not-at-source)',
      'delete f (not-at-source)',
    ]);
  });

  it('handles empty sides', async () => {
    expect(summary(await decide([], [file('x')], { direction: 'upload', deleteExtra: true }))).toEqual(['delete x (not-at-source)']);
    expect(summary(await decide([file('x')], [], { direction: 'upload', deleteExtra: true }))).toEqual(['copy x (missing-at-destination)']);
    expect(await decide([], [], { direction: 'upload' })).toEqual([]);
  });

  it('merges in S3 key order: "a-b" < "a/c" < "a0", astral characters last', async () => {
    const source = [file('a-b'), file('a/c'), file('a0'), file('\uff5e'), file('😀')];
    const destination = [file('a/c'), file('😀')];
    expect(summary(await decide(source, destination, { direction: 'upload' }))).toEqual([
      'copy a-b (missing-at-destination)',
      'skip-same a/c (same)',
      'copy a0 (missing-at-destination)',
      'copy \uff5e (missing-at-destination)',
      'skip-same 😀 (same)',
    ]);
  });

  it('streams: decisions come before the listings end', async () => {
    const pulled: string[] = [];
    const source = stream([file('a'), file('b'), file('c'), file('d')], pulled);
    const destination = stream([file('a'), file('b'), file('c'), file('d')], pulled);
    const merge = compareListings(source, destination, { direction: 'upload' });
    expect((await merge.next()).value).toMatchObject({ action: 'skip-same', relative: 'a' });
    expect(pulled.length).toBeLessThanOrEqual(4);
    await merge.return(undefined);
  });

  it('refuses unsorted or repeated keys on either side instead of copying or deleting the wrong files', async () => {
    await expect(decide([file('b'), file('a')], [], { direction: 'upload' })).rejects.toThrow(
      /source listing is not in S3 key order: "a" came after "b"/,
    );
    await expect(decide([], [file('a/b'), file('a-b')], { direction: 'upload', deleteExtra: true })).rejects.toThrow(/destination listing/);
    const error = await decide([file('a'), file('a')], [], { direction: 'upload' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(S3xferError);
    expect(error).toMatchObject({ code: 'UnsortedListing' });
  });

  it('ignores folder markers and common prefixes on both sides', async () => {
    const marker = file('d/', 0, T, { isDirMarker: true });
    const decisions = await decide([marker, file('d/x')], [file('c/', 0, T, { isDirMarker: true }), file('d/x')], {
      direction: 'download',
      deleteExtra: true,
    });
    expect(summary(decisions)).toEqual(['skip-same d/x (same)']);
    const prefix = { kind: 'prefix' as const, relative: 'p/', s3: { bucket: 'b', key: 'p/' } };
    expect(summary(await decide([prefix as never, file('q')], [], { direction: 'download' }))).toEqual(['copy q (missing-at-destination)']);
  });
});

describe('compareListings applies the aws CLI sync strategies', () => {
  const older = T - 60_000;
  const newer = T + 60_000;
  const cases: Array<[CompareOptions['mode'], CompareOptions['direction'], number, number, string]> = [
    // size-and-mtime, uploads (and S3 → S3): copy when the source is newer (base.py compare_time).
    ['size-and-mtime', 'upload', newer, T, 'copy (source-newer)'],
    ['size-and-mtime', 'upload', T, T, 'skip-same (same)'],
    ['size-and-mtime', 'upload', older, T, 'skip-same (same)'],
    ['size-and-mtime', 'copy', newer, T, 'copy (source-newer)'],
    ['size-and-mtime', 'copy', older, T, 'skip-same (same)'],
    // size-and-mtime, downloads: copy only when the local file is newer than the object.
    ['size-and-mtime', 'download', T, newer, 'copy (destination-newer)'],
    ['size-and-mtime', 'download', T, T, 'skip-same (same)'],
    ['size-and-mtime', 'download', newer, T, 'skip-same (same)'],
    // exact-timestamps: downloads copy on any difference; uploads as the default.
    ['exact-timestamps', 'download', newer, T, 'copy (timestamp-differs)'],
    ['exact-timestamps', 'download', T, newer, 'copy (timestamp-differs)'],
    ['exact-timestamps', 'download', T, T, 'skip-same (same)'],
    ['exact-timestamps', 'upload', older, T, 'skip-same (same)'],
    ['exact-timestamps', 'upload', newer, T, 'copy (source-newer)'],
    // size-only: times never count.
    ['size-only', 'upload', newer, T, 'skip-same (same)'],
    ['size-only', 'download', T, newer, 'skip-same (same)'],
    ['size-only', 'download', newer, T, 'skip-same (same)'],
  ];
  it.each(cases)('%s %s: source mtime %d, destination mtime %d → %s', async (mode, direction, sourceTime, destinationTime, expected) => {
    const [decision] = await decide([file('k', 5, sourceTime)], [file('k', 5, destinationTime)], { mode, direction });
    expect(`${decision!.action} (${decision!.reason})`).toBe(expected);
  });

  it.each(['size-and-mtime', 'size-only', 'exact-timestamps'] as const)(
    '%s copies when the sizes differ, whatever the times',
    async (mode) => {
      for (const direction of ['upload', 'download'] as const) {
        const [decision] = await decide([file('k', 5, T - 1000)], [file('k', 6, T)], { mode, direction });
        expect(decision).toMatchObject({ action: 'copy', reason: 'size-differs' });
      }
    },
  );

  it("compares times to the millisecond, S3's precision (a local mtime set from a Date may be a microsecond off)", async () => {
    const [decision] = await decide([file('k', 5, T)], [file('k', 5, T - 0.001)], { mode: 'exact-timestamps', direction: 'download' });
    expect(decision!.action).toBe('skip-same');
    const [later] = await decide([file('k', 5, T)], [file('k', 5, T + 1)], { mode: 'exact-timestamps', direction: 'download' });
    expect(later!.action).toBe('copy');
  });
});

describe('compareListings and skipped source paths', () => {
  it('passes skips on and never deletes what lies at or under them', async () => {
    const source = [file('a'), skipped('locked', true), skipped('pipe', false, 'SpecialFile'), file('z')];
    const destination = [file('a'), file('locked/1'), file('locked/2/3'), file('locked0'), file('pipe'), file('y'), file('z')];
    const decisions = await decide(source, destination, { direction: 'upload', deleteExtra: true });
    expect(summary(decisions)).toEqual([
      'skip-same a (same)',
      'skip-source locked (source-skipped)',
      'keep-destination locked/1 (source-skipped)',
      'keep-destination locked/2/3 (source-skipped)',
      'delete locked0 (not-at-source)',
      'skip-source pipe (source-skipped)',
      'delete y (not-at-source)',
      'skip-same z (same)',
    ]);
    expect(decisions[1]!.skipped).toMatchObject({ code: 'Unreadable' });
    expect(decisions[5]).toMatchObject({ destination: { relative: 'pipe' }, skipped: { code: 'SpecialFile' } });
  });

  it('without deleteExtra, reports skips and nothing for the destination-only files', async () => {
    const decisions = await decide([skipped('d', true)], [file('d/x')], { direction: 'upload' });
    expect(summary(decisions)).toEqual(['skip-source d (source-skipped)']);
  });

  it('passes on skips of names that are not UTF-8 without an order check', async () => {
    const bad = skipped('b/\ufffd', false, 'InvalidName');
    const decisions = await decide([file('b/a'), bad, file('b/b')], [], { direction: 'upload' });
    expect(summary(decisions)).toEqual([
      'copy b/a (missing-at-destination)',
      'skip-source b/\ufffd (source-skipped)',
      'copy b/b (missing-at-destination)',
    ]);
  });

  it('ignores skip records of the destination listing', async () => {
    expect(
      summary(await decide([file('a')], [skipped('a') as never, skipped('b') as never], { direction: 'download', deleteExtra: true })),
    ).toEqual(['copy a (missing-at-destination)']);
  });
});

describe('compareListings with a filter', () => {
  it('drops excluded paths on both sides, so excluded destination files are not deleted', async () => {
    const filter = createFilter([
      { type: 'exclude', pattern: '*.log' },
      { type: 'exclude', pattern: 'cache/*' },
    ]);
    const decisions = await decide([file('a.txt'), file('b.log'), file('cache/x')], [file('c.log'), file('cache/y'), file('d.txt')], {
      direction: 'upload',
      deleteExtra: true,
      filter,
    });
    expect(summary(decisions)).toEqual(['copy a.txt (missing-at-destination)', 'delete d.txt (not-at-source)']);
  });

  it('filters a skipped directory as "dir/"', async () => {
    const filter = createFilter([{ type: 'exclude', pattern: 'locked/*' }]);
    expect(await decide([skipped('locked', true)], [], { direction: 'upload', filter })).toEqual([]);
  });
});
