import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareKeys, createPrefixConflictDetector, isTempFileName, localPathForKey, tempFileName } from '../../src/storage/index.js';

const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const sign = (n: number) => Math.sign(n);

describe('compareKeys orders keys by their UTF-8 bytes, as S3 lists them', () => {
  it('puts a directory\'s keys between names with "-" and "0" after the same stem', () => {
    expect(['a0', 'a/c', 'a-b', 'a'].sort(compareKeys)).toEqual(['a', 'a-b', 'a/c', 'a0']);
  });

  it('sorts characters above U+FFFF after U+E000–U+FFFF (where UTF-16 order differs)', () => {
    // '😀' is U+1F600 (UTF-16 D83D DE00 < FF5E, UTF-8 F0… > EF…).
    expect(['😀', '\uff5e', 'z'].sort(compareKeys)).toEqual(['z', '\uff5e', '😀']);
    expect(['😀', '\uff5e'].sort()).toEqual(['😀', '\uff5e']); // what a plain sort would do
  });

  it('agrees with Buffer.compare on many random strings', () => {
    const alphabet = ['a', 'b', '/', '-', '0', ' ', '+', '%', 'é', 'e\u0301', '\u00ff', '\ud7ff', '\ue000', '\uffee', '😀', '𝄞', '日'];
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const word = () =>
      Array.from({ length: 1 + Math.floor(random() * 5) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
    for (let i = 0; i < 5000; i++) {
      const a = word();
      const b = random() < 0.2 ? a + word() : word();
      expect(sign(compareKeys(a, b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`).toBe(sign(byUtf8(a, b)));
    }
  });
});

describe('temp file names', () => {
  it('are new for every download: 12 random hex digits (48 bits) each time', () => {
    const ids = Array.from({ length: 2000 }, () => /^\.photo\.jpg\.([0-9a-f]{12})\.s3xfer-part$/.exec(tempFileName('photo.jpg'))?.[1]);
    expect(ids.every((id) => id !== undefined)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    // Every digit position varies (none is a UUID's fixed version or variant digit).
    for (let i = 0; i < 12; i++) expect(new Set(ids.map((id) => id![i])).size, `digit ${i}`).toBeGreaterThan(8);
  });

  it('recognises the names AtomicFile gives its temp files, and only those', () => {
    expect(isTempFileName(tempFileName('photo.jpg'))).toBe(true);
    expect(isTempFileName(tempFileName('x'.repeat(250)))).toBe(true);
    expect(tempFileName('x'.repeat(250), '0123456789ab')).toBe('.0123456789ab.s3xfer-part');
    expect(tempFileName('a b.txt', '0123456789ab')).toBe('.a b.txt.0123456789ab.s3xfer-part');
    for (const name of [
      '.a.0123456789ab.s3xfer-part',
      '.0123456789ab.s3xfer-part',
      '..0123456789ab.s3xfer-part',
      '.a.b\nc.0123456789ab.s3xfer-part',
    ]) {
      expect(isTempFileName(name), name).toBe(true);
    }
    for (const name of [
      'a.0123456789ab.s3xfer-part', // not hidden
      '.a.0123456789AB.s3xfer-part', // upper-case hex
      '.a.0123456789a.s3xfer-part', // 11 digits
      '.a0123456789ab.s3xfer-part', // no dot before the digits
      '.a.0123456789ab.s3xfer-part.txt',
      '.a.0123456789ab.s3xfer-part ',
      'report.s3xfer-part',
    ]) {
      expect(isTempFileName(name), name).toBe(false);
    }
  });
});

describe('localPathForKey', () => {
  const root = '/data/down';

  it('maps a relative key to a path under the root', () => {
    expect(localPathForKey(root, 'a/b c/d+e%41#?.txt')).toEqual({ ok: true, path: '/data/down/a/b c/d+e%41#?.txt' });
    // A relative root stays relative: the path is printed as the user gave it (as aws s3 cp prints it).
    expect(localPathForKey('rel', 'x')).toEqual({ ok: true, path: join('rel', 'x') });
    expect(localPathForKey('.', 'x/y')).toEqual({ ok: true, path: 'x/y' });
    expect(localPathForKey(root, '..a/b..')).toEqual({ ok: true, path: '/data/down/..a/b..' });
    expect(localPathForKey(root, 'C:x')).toEqual({ ok: true, path: '/data/down/C:x' }); // only special on Windows
  });

  it.each([
    ['../x', 'UnsafeKey', /"\.\." path segment/],
    ['a/../../x', 'UnsafeKey', /"\.\." path segment/],
    ['a/..', 'UnsafeKey', /"\.\."/],
    ['..', 'UnsafeKey', /"\.\."/],
    ['.', 'UnsafeKey', /"\." path segment/],
    ['a/./b', 'UnsafeKey', /"\."/],
    ['/etc/x', 'UnsafeKey', /absolute/],
    ['C:\\x', 'UnsafeKey', /backslash/],
    ['\\\\host\\share', 'UnsafeKey', /backslash/],
    ['a\\..\\..\\x', 'UnsafeKey', /backslash/],
    ['a\0b', 'UnsafeKey', /NUL/],
    ['a//b', 'UnsafeKey', /empty path segment/],
    ['', 'UnsafeKey', /empty/],
    ['a/', 'DirectoryMarker', /directory marker/],
    ['/', 'DirectoryMarker', /directory marker/],
    [`a/${'x'.repeat(256)}`, 'NameTooLong', /255 bytes/],
    [`${'é'.repeat(128)}`, 'NameTooLong', /255 bytes/],
  ])('refuses %j', (key, code, reason) => {
    const result = localPathForKey(root, key);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.code).toBe(code);
      expect(result.reason).toMatch(reason);
    }
  });

  it('refuses drive letters and streams with Windows rules', () => {
    expect(localPathForKey('C:\\down', 'C:x', { platform: 'win32' }).ok).toBe(false);
    expect(localPathForKey('C:\\down', 'a:stream', { platform: 'win32' }).ok).toBe(false);
    expect(localPathForKey('C:\\down', 'a/b', { platform: 'win32' })).toEqual({ ok: true, path: 'C:\\down\\a\\b' });
  });
});

describe('createPrefixConflictDetector', () => {
  const conflicts = (keys: string[]) => {
    const detect = createPrefixConflictDetector();
    return keys.map((key) => [key, detect(key)] as const).filter(([, other]) => other !== undefined);
  };

  it('finds a file key followed by keys under it, even with keys in between', () => {
    expect(conflicts(['a', 'a-b', 'a.txt', 'a/b', 'a/c', 'b'])).toEqual([
      ['a/b', 'a'],
      ['a/c', 'a'],
    ]);
  });

  it('finds nested conflicts and conflicts of keys that are themselves between', () => {
    expect(conflicts(['a', 'a-b', 'a-b/c', 'a/b'])).toEqual([
      ['a-b/c', 'a-b'],
      ['a/b', 'a'],
    ]);
    expect(conflicts(['x/a', 'x/a/b/c'])).toEqual([['x/a/b/c', 'x/a']]);
  });

  it('treats directory markers as directories', () => {
    expect(conflicts(['a', 'a/'])).toEqual([['a/', 'a']]);
    expect(conflicts(['a/', 'a/b', 'a/c/', 'a/c/d'])).toEqual([]);
    expect(conflicts(['a/', 'a//b'])).toEqual([]);
  });

  it('reports nothing for keys that only share a stem', () => {
    expect(conflicts(['a', 'a0', 'a1/b', 'ab', 'b', 'b0/c'])).toEqual([]);
  });
});
