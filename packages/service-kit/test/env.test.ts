import { envBool, envNumber, normalizeListenAddress, unixSocketPath } from '../src';

describe('env and addresses', () => {
  it.each([
    ['127.0.0.1:0', '127.0.0.1:0'],
    ['tcp://localhost:50051', 'localhost:50051'],
    ['[::1]:7', '[::1]:7'],
    ['/run/perseus/agent.sock', 'unix:/run/perseus/agent.sock'],
    ['unix:///tmp/a.sock', 'unix:///tmp/a.sock'],
  ])('normalises %s', (input, out) => {
    expect(normalizeListenAddress(input)).toBe(out);
  });

  it('rejects nonsense addresses', () => {
    expect(() => normalizeListenAddress('not an address')).toThrow(
      'listen address must be host:port or unix:/path, got "not an address"',
    );
  });

  it('extracts socket paths', () => {
    expect(unixSocketPath('unix:///tmp/a.sock')).toBe('/tmp/a.sock');
    expect(unixSocketPath('unix:/tmp/a.sock')).toBe('/tmp/a.sock');
    expect(unixSocketPath('127.0.0.1:1')).toBeUndefined();
  });

  it('parses typed env values with named errors', () => {
    expect(envNumber('X', 3, { X: '2.5' })).toBe(2.5);
    expect(() => envNumber('PERSEUS_X', 3, { PERSEUS_X: 'abc' })).toThrow(
      'PERSEUS_X must be a number, got "abc"',
    );
    expect(envBool('B', false, { B: 'yes' })).toBe(true);
    expect(() => envBool('B', false, { B: 'maybe' })).toThrow('B must be true or false');
  });
});
