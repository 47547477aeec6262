import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import {
  AccessPolicy,
  PerseusError,
  isLocalAddress,
  listenerPolicy,
  loadAccessTokens,
  parseAccessTokens,
  serviceListenerAccess,
} from '../src';

const FILE = [
  '# name scopes secret [jobs]',
  'reader read r-secret-0123456789',
  'trainer-a report,read a-secret-0123456789 jobs=a',
  'ops control,read,report o-secret-0123456789 jobs=*',
].join('\n');

function md(secret?: string): Metadata {
  const m = new Metadata();
  if (secret !== undefined) m.set('authorization', `Bearer ${secret}`);
  return m;
}

function code(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (err instanceof PerseusError) return err.code;
    throw err;
  }
  return status.OK;
}

describe('access tokens and policy', () => {
  const tokens = parseAccessTokens(FILE);
  const policy = new AccessPolicy(tokens, true);

  it('parses scopes and job lists, rejects malformed lines naming them', () => {
    expect(tokens.map((t) => [t.name, [...t.scopes], t.jobs && [...t.jobs]])).toEqual([
      ['reader', ['read'], undefined],
      ['trainer-a', ['report', 'read'], ['a']],
      ['ops', ['control', 'read', 'report'], undefined],
    ]);
    expect(() => parseAccessTokens('x admin secret-0123456789abc', 'f')).toThrow(
      'f:1: scope must be read, report or control, got "admin"',
    );
    expect(() => parseAccessTokens('x read short', 'f')).toThrow(/at least 16/);
    expect(() => parseAccessTokens('x read secret-0123456789abc job=a', 'f')).toThrow(/jobs=/);
  });

  it('requires a known token and the scope; per-job for report and control', () => {
    expect(code(() => policy.check(md(), 'read'))).toBe(status.UNAUTHENTICATED);
    expect(code(() => policy.check(md('nope-0123456789abcdef'), 'read'))).toBe(
      status.UNAUTHENTICATED,
    );
    expect(code(() => policy.check(md('r-secret-0123456789'), 'read'))).toBe(status.OK);
    expect(code(() => policy.check(md('r-secret-0123456789'), 'report', 'a'))).toBe(
      status.PERMISSION_DENIED,
    );
    expect(code(() => policy.check(md('a-secret-0123456789'), 'report', 'a'))).toBe(status.OK);
    expect(code(() => policy.check(md('a-secret-0123456789'), 'report', 'victim'))).toBe(
      status.PERMISSION_DENIED,
    );
    expect(code(() => policy.check(md('a-secret-0123456789'), 'control', 'a'))).toBe(
      status.PERMISSION_DENIED,
    );
    expect(code(() => policy.check(md('o-secret-0123456789'), 'control', 'victim'))).toBe(
      status.OK,
    );
    // An open policy lets anonymous calls through but still checks a presented token.
    expect(code(() => AccessPolicy.open().check(md(), 'control', 'x'))).toBe(status.OK);
  });

  it('refuses a token file readable by group or others', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-tokens-'));
    try {
      const f = path.join(dir, 'tokens');
      fs.writeFileSync(f, FILE, { mode: 0o644 });
      fs.chmodSync(f, 0o644);
      expect(() => loadAccessTokens(f)).toThrow(/readable by group or others \(mode 0644\)/);
      fs.chmodSync(f, 0o600);
      expect(loadAccessTokens(f)).toHaveLength(3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('local means a Unix socket or an address that is loopback once resolved', async () => {
    expect(await isLocalAddress('unix:/tmp/x.sock')).toBe(true);
    expect(await isLocalAddress('127.0.0.1:1')).toBe(true);
    expect(await isLocalAddress('[::1]:1')).toBe(true);
    expect(await isLocalAddress('localhost:1')).toBe(true);
    expect(await isLocalAddress('0.0.0.0:1')).toBe(false);
    expect(await isLocalAddress('10.1.2.3:1')).toBe(false);
    // A name that merely starts like a loopback address is not trusted as text.
    expect(await isLocalAddress('127.evil.invalid:1')).toBe(false);
  });

  it('a non-local listener needs TLS and tokens', async () => {
    await expect(
      listenerPolicy('0.0.0.0:1', { tokens: undefined, tls: false, service: 'profiler' }),
    ).rejects.toThrow(/profiler refuses to serve on 0.0.0.0:1 without TLS and a token file/);
    await expect(
      listenerPolicy('0.0.0.0:1', { tokens, tls: false, service: 'profiler' }),
    ).rejects.toThrow(/without TLS/);
    expect(
      (await listenerPolicy('0.0.0.0:1', { tokens, tls: true, service: 'p' })).requireToken,
    ).toBe(true);
    expect(
      (await listenerPolicy('127.0.0.1:1', { tokens: undefined, tls: false, service: 'p' }))
        .requireToken,
    ).toBe(false);
    expect(
      (await listenerPolicy('127.0.0.1:1', { tokens, tls: false, service: 'p' })).requireToken,
    ).toBe(true);
  });

  it("a service listener's access: open without a token file until settled, tokens from the start with one", async () => {
    const open = serviceListenerAccess('', { tls: false, service: 'profiler' });
    expect(open.tokens).toBeUndefined();
    expect(open.listener.current.requireToken).toBe(false);
    await expect(open.settle('0.0.0.0:1')).rejects.toThrow(/profiler refuses to serve/);
    await open.settle('127.0.0.1:1');
    expect(open.listener.current.requireToken).toBe(false);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perseus-tokens-'));
    try {
      const f = path.join(dir, 'tokens');
      fs.writeFileSync(f, FILE, { mode: 0o600 });
      const withTokens = serviceListenerAccess(f, { tls: true, service: 'optimizer' });
      expect(withTokens.tokens?.map((t) => t.name)).toEqual(['reader', 'trainer-a', 'ops']);
      expect(withTokens.listener.current.requireToken).toBe(true);
      await withTokens.settle('0.0.0.0:1');
      expect(withTokens.listener.current.requireToken).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
