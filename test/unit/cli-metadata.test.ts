import { describe, expect, it } from 'vitest';
import { parseMetadata } from '../../src/cli/options.js';

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
