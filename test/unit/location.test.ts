import { describe, expect, it } from 'vitest';
import { parseLocation, parseS3Url, UsageError } from '../../src/index.js';
import { keyBaseName, uploadKey } from '../../src/location.js';

describe('parseS3Url', () => {
  it('splits bucket and key at the first slash, keeping the key verbatim', () => {
    expect(parseS3Url('s3://bucket/dir/a b%20c.txt')).toEqual({ kind: 's3', bucket: 'bucket', key: 'dir/a b%20c.txt' });
    expect(parseS3Url('s3://bucket')).toEqual({ kind: 's3', bucket: 'bucket', key: '' });
    expect(parseS3Url('s3://bucket/')).toEqual({ kind: 's3', bucket: 'bucket', key: '' });
    expect(parseS3Url('s3://my.bucket-1/prefix/')).toMatchObject({ bucket: 'my.bucket-1', key: 'prefix/' });
  });

  it.each(['s3://', 's3:///key', 's3://ab/key', 's3://-bucket/key', 's3://bu cket/key', `s3://${'b'.repeat(64)}/k`, 'http://bucket/key'])(
    'refuses %j',
    (url) => {
      expect(() => parseS3Url(url)).toThrow(UsageError);
      expect(() => parseS3Url(url)).toThrow(/invalid S3 URL/);
    },
  );
});

describe('parseLocation', () => {
  it('treats anything without s3:// as a local path', () => {
    expect(parseLocation('./a.bin')).toEqual({ kind: 'local', path: './a.bin' });
    expect(parseLocation('s3:/bucket/key')).toEqual({ kind: 'local', path: 's3:/bucket/key' });
    expect(parseLocation('S3://bucket/key')).toMatchObject({ kind: 's3', bucket: 'bucket' });
  });
});

describe('uploadKey', () => {
  it('appends the file name to an empty key or a prefix ending in /', () => {
    expect(uploadKey(parseS3Url('s3://bkt/'), '/tmp/x/a.bin')).toBe('a.bin');
    expect(uploadKey(parseS3Url('s3://bkt'), 'a.bin')).toBe('a.bin');
    expect(uploadKey(parseS3Url('s3://bkt/backups/'), './data/a.bin')).toBe('backups/a.bin');
    expect(uploadKey(parseS3Url('s3://bkt/exact-name'), './a.bin')).toBe('exact-name');
  });
});

describe('keyBaseName', () => {
  it('takes the last segment of a key', () => {
    expect(keyBaseName('a/b/c.txt')).toBe('c.txt');
    expect(keyBaseName('c.txt')).toBe('c.txt');
  });

  it.each(['a/b/', '..', 'a/..', 'a/.', ''])('refuses %j, which names no file', (key) => {
    expect(() => keyBaseName(key)).toThrow(UsageError);
  });
});
