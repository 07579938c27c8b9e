import { describe, expect, it, onTestFinished } from 'vitest';
import { humanReadableSize } from '../../src/cli/commands/ls.js';
import {
  clientOptionsFrom,
  type GlobalArgs,
  pageSizeFrom,
  parseExpires,
  parseMetadata,
  uploadExtraArgsFrom,
} from '../../src/cli/options.js';
import { DEFAULT_TRANSFER_CONFIG } from '../../src/config.js';

describe('--metadata', () => {
  it("takes key=value pairs, or the aws CLI's JSON object", () => {
    expect(parseMetadata('a=1,B=Two')).toEqual({ a: '1', B: 'Two' });
    expect(parseMetadata('k=a=b')).toEqual({ k: 'a=b' });
    expect(parseMetadata('{"k":"v","build-id":"42"}')).toEqual({ k: 'v', 'build-id': '42' });
    expect(parseMetadata(' {"k": "v"} ')).toEqual({ k: 'v' });
  });

  it.each([
    ['', 'expected key=value'],
    ['novalue', 'token keys'],
    ['=v', 'token keys'],
    ['bad key=v', 'token keys'],
    ['{"k":', 'not valid JSON'],
    ['{"k":1}', 'the value of "k" is not a string'],
    ['{"bad key":"v"}', 'token keys'],
    ['{}', 'expected key=value'],
    ['k=Zoë', 'only printable ASCII'],
    ['{"k":"Zoë"}', 'only printable ASCII'],
  ])('refuses %j (UsageError: %s)', (text, why) => {
    expect(() => parseMetadata(text)).toThrow(expect.objectContaining({ name: 'UsageError', message: expect.stringContaining(why) }));
  });
});

describe('client flags of the aws CLI', () => {
  const base: GlobalArgs = {
    verifySsl: true,
    signRequest: true,
    quiet: false,
    onlyShowErrors: false,
    progress: true,
    json: false,
    debug: false,
  };
  const client = (args: Partial<GlobalArgs>) => clientOptionsFrom({ ...base, ...args }, {}, DEFAULT_TRANSFER_CONFIG);

  it('--no-sign-request makes the client unsigned; signing is the default', () => {
    expect(client({ signRequest: false }).unsigned).toBe(true);
    expect(client({}).unsigned).toBe(false);
  });

  it('--cli-connect-timeout and --cli-read-timeout are seconds (0: no limit), given to the client in ms; unset, the client decides', () => {
    expect(client({ cliConnectTimeout: '1.5', cliReadTimeout: '0' })).toMatchObject({ connectionTimeoutMs: 1500, socketTimeoutMs: 0 });
    expect(client({ cliReadTimeout: '120' })).toMatchObject({ connectionTimeoutMs: undefined, socketTimeoutMs: 120_000 });
    // A fraction is rounded up: no positive value turns into "no limit".
    expect(client({ cliConnectTimeout: '0.0004' })).toMatchObject({ connectionTimeoutMs: 1 });
  });

  it.each([
    [{ cliConnectTimeout: '-1' }, 'invalid --cli-connect-timeout "-1"'],
    [{ cliReadTimeout: 'soon' }, 'invalid --cli-read-timeout "soon"'],
    // An unset variable (`--cli-read-timeout "$T"`) must not turn the limit off.
    [{ cliReadTimeout: '' }, 'invalid --cli-read-timeout ""'],
    [{ cliReadTimeout: ' ' }, 'invalid --cli-read-timeout " "'],
    [{ cliReadTimeout: 'Infinity' }, 'invalid --cli-read-timeout "Infinity"'],
    [{ cliReadTimeout: '1e3' }, 'invalid --cli-read-timeout "1e3"'],
    [{ cliConnectTimeout: '2147484' }, 'invalid --cli-connect-timeout "2147484"'],
  ])('refuses %j', (args, message) => {
    expect(() => client(args)).toThrow(
      expect.objectContaining({ name: 'UsageError', code: 'InvalidTimeout', message: expect.stringContaining(message) }),
    );
  });

  it('--page-size: a whole number from 1 (stores cap a page at 1,000 themselves, as the aws CLI lets them)', () => {
    expect(pageSizeFrom({ pageSize: 1 })).toBe(1);
    expect(pageSizeFrom({ pageSize: 5000 })).toBe(5000);
    expect(pageSizeFrom({})).toBeUndefined();
    for (const pageSize of [0, 2.5, Number.NaN, -3, 2 ** 31]) {
      expect(() => pageSizeFrom({ pageSize }), String(pageSize)).toThrow(expect.objectContaining({ code: 'InvalidPageSize' }));
    }
  });
});

describe('--expires and --website-redirect', () => {
  it('become Expires (a date) and WebsiteRedirectLocation', () => {
    expect(uploadExtraArgsFrom({ expires: '2027-01-31T12:00:00Z', websiteRedirect: '/new.html' })).toEqual({
      Expires: new Date(Date.UTC(2027, 0, 31, 12)),
      WebsiteRedirectLocation: '/new.html',
    });
  });

  it('reads --expires as botocore does: ISO 8601 (UTC when no zone is given, whatever the machine zone), an HTTP date, epoch seconds', () => {
    const noon = new Date(Date.UTC(2027, 0, 31, 12));
    // A machine five hours behind UTC: a zone-less time read as local would be 17:00 UTC.
    const zone = process.env.TZ;
    process.env.TZ = 'America/New_York';
    onTestFinished(() => {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    });
    expect(new Date('2027-01-31T12:00').getUTCHours()).toBe(17);
    for (const text of [
      '2027-01-31T12:00:00Z',
      '2027-01-31T12:00',
      '2027-01-31 12:00:00',
      '2027-01-31T14:00:00+02:00',
      'Sun, 31 Jan 2027 12:00:00 GMT',
      '1801396800',
    ]) {
      expect(parseExpires(text), text).toEqual(noon);
    }
    expect(parseExpires('2027-01-31')).toEqual(new Date(Date.UTC(2027, 0, 31)));
  });

  // V8's own parser takes the last three as dates (2001-05-01, 2027-01-01, 2027-03-02).
  it.each(['', ' ', 'next week', '2027-13-45', '2027-01-31T25:00', 'next week 5', 'foo 2027', '2027-02-30'])(
    'refuses --expires %j',
    (expires) => {
      expect(() => uploadExtraArgsFrom({ expires })).toThrow(expect.objectContaining({ code: 'InvalidExpires' }));
    },
  );

  it('refuses a --website-redirect that is not printable ASCII', () => {
    expect(() => uploadExtraArgsFrom({ websiteRedirect: '/naïve' })).toThrow(expect.objectContaining({ code: 'InvalidHeaderValue' }));
  });
});

describe('ls --human-readable sizes, as the aws CLI prints them', () => {
  // Expected values are the aws CLI's own (awscli.customizations.s3.utils.human_readable_size).
  it.each([
    [0, '0 Bytes'],
    [1, '1 Byte'],
    [2, '2 Bytes'],
    [1023, '1023 Bytes'],
    [1024, '1.0 KiB'],
    [1075, '1.0 KiB'],
    [1280, '1.2 KiB'],
    [1536, '1.5 KiB'],
    [1792, '1.8 KiB'],
    [2304, '2.2 KiB'],
    [1048063, '1023.5 KiB'],
    [1048064, '1.0 MiB'],
    [1048576, '1.0 MiB'],
    [1073307648, '1.0 GiB'],
    [10737418245, '10.0 GiB'],
    [5497558138880, '5.0 TiB'],
    [3377699720527872, '3.0 PiB'],
  ])('%d → %s', (bytes, text) => {
    expect(humanReadableSize(bytes)).toBe(text);
  });
});
