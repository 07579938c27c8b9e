import { describe, expect, it } from 'vitest';
import { clientOptionsFrom, type GlobalArgs, pageSizeFrom, parseMetadata, uploadExtraArgsFrom } from '../../src/cli/options.js';
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
    expect(client({ cliConnectTimeout: 1.5, cliReadTimeout: 0 })).toMatchObject({ connectionTimeoutMs: 1500, socketTimeoutMs: 0 });
    expect(client({ cliReadTimeout: 120 })).toMatchObject({ connectionTimeoutMs: undefined, socketTimeoutMs: 120_000 });
  });

  it.each([
    [{ cliConnectTimeout: -1 }, 'invalid --cli-connect-timeout "-1"'],
    [{ cliReadTimeout: Number.NaN }, 'invalid --cli-read-timeout not a number'],
    [{ cliReadTimeout: Number.POSITIVE_INFINITY }, 'invalid --cli-read-timeout "Infinity"'],
  ])('refuses %j', (args, message) => {
    expect(() => client(args)).toThrow(
      expect.objectContaining({ name: 'UsageError', code: 'InvalidTimeout', message: expect.stringContaining(message) }),
    );
  });

  it('--page-size: a whole number from 1 to 1000', () => {
    expect(pageSizeFrom({ pageSize: 1 })).toBe(1);
    expect(pageSizeFrom({ pageSize: 1000 })).toBe(1000);
    expect(pageSizeFrom({})).toBeUndefined();
    for (const pageSize of [0, 1001, 2.5, Number.NaN, -3]) {
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

  it.each(['', ' ', 'next week', '2027-13-45'])('refuses --expires %j', (expires) => {
    expect(() => uploadExtraArgsFrom({ expires })).toThrow(expect.objectContaining({ code: 'InvalidExpires' }));
  });

  it('refuses a --website-redirect that is not printable ASCII', () => {
    expect(() => uploadExtraArgsFrom({ websiteRedirect: '/naïve' })).toThrow(expect.objectContaining({ code: 'InvalidHeaderValue' }));
  });
});
