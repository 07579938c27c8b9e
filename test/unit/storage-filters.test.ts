import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { createFilter, type FilterRule } from '../../src/storage/index.js';

const exclude = (pattern: string): FilterRule => ({ type: 'exclude', pattern });
const include = (pattern: string): FilterRule => ({ type: 'include', pattern });
const kept = (rules: FilterRule[], paths: string[]) => paths.filter(createFilter(rules));

const paths = ['a.txt', 'b.jpg', 'dir/c.txt', 'dir/sub/d.txt', 'dir/e.jpg', '.hidden.txt', 'dir/.git/config', 'other/dir/f.txt'];

describe('createFilter: the aws CLI exclude/include semantics', () => {
  it('includes everything by default', () => {
    expect(kept([], paths)).toEqual(paths);
  });

  it("lets the last matching rule win, so order matters (docs: \"--exclude '*' --include '*.txt'\")", () => {
    const txt = ['a.txt', 'dir/c.txt', 'dir/sub/d.txt', '.hidden.txt', 'other/dir/f.txt'];
    expect(kept([exclude('*'), include('*.txt')], paths)).toEqual(txt);
    expect(kept([include('*.txt'), exclude('*')], paths)).toEqual([]);
    // A later exclude narrows an include; a still later include widens again.
    expect(kept([exclude('*'), include('*.txt'), exclude('dir/*'), include('dir/sub/*')], paths)).toEqual([
      'a.txt',
      'dir/sub/d.txt',
      '.hidden.txt',
      'other/dir/f.txt',
    ]);
  });

  it('matches "*" across "/" and against the whole relative path', () => {
    expect(kept([exclude('*.txt')], paths)).toEqual(['b.jpg', 'dir/e.jpg', 'dir/.git/config']);
    expect(kept([exclude('dir/*')], paths)).toEqual(['a.txt', 'b.jpg', '.hidden.txt', 'other/dir/f.txt']);
    // Anchored at the root: "dir/*" does not match "other/dir/f.txt", "*dir/*" does.
    expect(kept([exclude('*dir/*')], paths)).toEqual(['a.txt', 'b.jpg', '.hidden.txt']);
    // A directory name alone matches nothing below it (as in the aws CLI).
    expect(kept([exclude('dir')], paths)).toEqual(paths);
    expect(kept([exclude('*/.git/*')], paths)).not.toContain('dir/.git/config');
  });

  it('treats dotfiles like any other file', () => {
    expect(kept([exclude('*')], ['.hidden', 'd/.x'])).toEqual([]);
    expect(kept([exclude('*'), include('.*')], ['.hidden', 'd/.x', 'y'])).toEqual(['.hidden']);
  });

  it('filters "." and ".." segments like any other name (keys may have them: "--exclude \'*\'" must protect them)', () => {
    const dotted = ['..', '.', '../a', './b', 'a/../b', 'd/..', '../x.txt', 'x'];
    expect(kept([exclude('*')], dotted)).toEqual([]);
    expect(kept([exclude('*'), include('*.txt')], dotted)).toEqual(['../x.txt']);
    expect(kept([exclude('../*')], dotted)).toEqual(['..', '.', './b', 'a/../b', 'd/..', 'x']);
    expect(kept([exclude('?')], dotted)).toEqual(['..', '../a', './b', 'a/../b', 'd/..', '../x.txt']);
  });

  it('supports ?, [seq] and [!seq]', () => {
    const names = ['a1', 'a2', 'ab', 'a12', 'b1'];
    expect(kept([exclude('*'), include('a?')], names)).toEqual(['a1', 'a2', 'ab']);
    expect(kept([exclude('*'), include('a[12]')], names)).toEqual(['a1', 'a2']);
    expect(kept([exclude('*'), include('a[!12]')], names)).toEqual(['ab']);
    expect(kept([exclude('*'), include('[a-b]1')], names)).toEqual(['a1', 'b1']);
  });

  it('is case-sensitive and takes other characters literally', () => {
    expect(kept([exclude('*.TXT')], ['a.txt', 'b.TXT'])).toEqual(['a.txt']);
    const odd = ['photo (1).jpg', 'photo 1.jpg', '!important', 'a{b,c}', 'a+b', 'x|y', 'a\\b', 'c$^.d', '%2F', '#1', '@(x)'];
    for (const name of odd) {
      expect(kept([exclude(name)], odd), name).toEqual(odd.filter((other) => other !== name));
    }
    expect(kept([exclude('*(1).jpg')], odd)).not.toContain('photo (1).jpg');
    expect(kept([exclude('*(1).jpg')], odd)).toContain('photo 1.jpg');
    expect(kept([exclude('!*')], ['!x', 'x'])).toEqual(['x']); // no negation
    expect(kept([exclude('{a,b}')], ['a', 'b'])).toEqual(['a', 'b']); // no braces
    expect(kept([exclude('a\\*')], ['a\\x', 'a*'])).toEqual(['a*']); // backslash is literal
  });

  it('matches non-ASCII names', () => {
    expect(kept([exclude('日本/*')], ['日本/語.txt', '日本語'])).toEqual(['日本語']);
    expect(kept([exclude('caf?')], ['café', 'cafe\u0301'])).toEqual(['cafe\u0301']);
  });

  it('refuses an empty pattern', () => {
    expect(() => createFilter([exclude('')])).toThrow(UsageError);
  });
});
