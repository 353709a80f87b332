import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkAbsolutePath, checkInsideRoot, decodeTail } from '../../executors/base.js';
import { fingerprintOf, keyTypeOf, parseFingerprint } from '../../executors/host-key.js';
import { commandLine, quote, taggedLines } from '../../executors/shell.js';
import { isExecutorError } from '../../executors/types.js';
import { envFileText, launchArgs } from '../../executors/wrapper.js';

const HOSTILE = [
  '',
  'plain',
  "it's",
  "''",
  "'\\''",
  '; touch /tmp/trainyard-pwned-unit',
  '$(touch /tmp/trainyard-pwned-unit)',
  '`touch /tmp/trainyard-pwned-unit`',
  '"double" $HOME ${HOME} \\ \\\\ \\n',
  'line one\nline two\n',
  '\n',
  'tab\there',
  '*?[a-z] ~ ! # & | < > ( ) { }',
  '-n',
  '--',
  'üñíçødé ✓ 😀 日本語',
  '\r\x01\x7f',
];

/** What /bin/sh makes of `words` (each printed between brackets). */
function shellSees(words: string): string {
  return execFileSync('/bin/sh', ['-c', `for w in ${words}; do printf '[%s]' "$w"; done`], { encoding: 'utf8' });
}

describe('quote', () => {
  it.each(HOSTILE.map((s) => [JSON.stringify(s), s]))('makes %s one shell word meaning exactly itself', (_, value) => {
    expect(shellSees(quote(value))).toBe(`[${value}]`);
  });

  it('always single-quotes, even text that would be safe bare', () => {
    expect(quote('abc')).toBe("'abc'");
    expect(quote("a'b")).toBe("'a'\\''b'");
  });

  it('keeps the words of a command line apart', () => {
    expect(shellSees(commandLine(['a b', "c'd", '$(e)']))).toBe("[a b][c'd][$(e)]");
  });

  it('refuses NUL bytes and lone surrogates instead of changing them', () => {
    expect(() => quote('a\0b')).toThrow(/NUL/);
    expect(() => quote('a\uD800b')).toThrow(/surrogate/);
    expect(quote('😀')).toBe("'😀'");
  });
});

describe('envFileText', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trainyard-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exports every value verbatim when sourced by sh', () => {
    const env: Record<string, string> = {};
    HOSTILE.forEach((value, i) => (env[`V${i}`] = value));
    const file = join(dir, 'env');
    writeFileSync(file, envFileText(env));
    const program = `. "$1"; for k in ${Object.keys(env).join(' ')}; do eval "printf '%s\\\\0' \\"\\$$k\\""; done`;
    const out = execFileSync('/bin/sh', ['-c', program, 'sh', file], { encoding: 'utf8', env: {} });
    expect(out.split('\0').slice(0, -1)).toEqual(HOSTILE);
  });

  it('refuses names that are not shell variable names', () => {
    for (const key of ['', '1A', 'A-B', 'A B', 'A;B', '$(x)', 'ÄB', 'A=B']) {
      expect(() => envFileText({ [key]: 'v' }), key).toThrow(/invalid environment variable name/);
    }
  });

  it('refuses variables read-only in bash', () => {
    expect(() => envFileText({ UID: '0' })).toThrow(/reserved/);
  });
});

describe('launchArgs', () => {
  it('carries the command and env as data, not as part of a program', () => {
    const args = launchArgs({ runDir: '/r/x', command: 'echo "$A"', env: { A: '1' } });
    expect(args).toEqual(['/r/x', '', 'echo "$A"', "export A='1'\n"]);
  });

  it('refuses an empty command', () => {
    expect(() => launchArgs({ runDir: '/r/x', command: '  ', env: {} })).toThrow(/empty/);
  });
});

describe('paths', () => {
  it('accepts only normal absolute paths', () => {
    expect(checkAbsolutePath('/a/b c', 'p')).toBe('/a/b c');
    for (const bad of ['a/b', '/a/../b', '/a/./b', '/a//b', '/a/b/', '/a/..', '']) {
      expect(() => checkAbsolutePath(bad, 'p'), bad).toThrow();
    }
  });

  it('keeps run dirs strictly inside the runs root', () => {
    expect(checkInsideRoot('/runs', '/runs/1', 'd')).toBe('/runs/1');
    for (const bad of ['/runs', '/runsx/1', '/etc', '/']) {
      let error: unknown;
      try {
        checkInsideRoot('/runs', bad, 'd');
      } catch (e) {
        error = e;
      }
      expect(isExecutorError(error, 'OUTSIDE_RUNS_ROOT') || isExecutorError(error, 'INVALID_ARGUMENT'), bad).toBe(true);
    }
  });
});

describe('taggedLines and decodeTail', () => {
  it('ignores login-script noise around tagged lines', () => {
    expect(
      taggedLines('welcome!\ntrainyard-state 1 \nnoise trainyard-state 0\ntrainyard-state 0 3', 'trainyard-state'),
    ).toEqual(['1 ', '0 3']);
  });

  it('starts a tail at a character boundary', () => {
    const bytes = Buffer.from('aé✓😀z');
    for (let start = 0; start < bytes.length; start += 1) {
      const text = decodeTail(bytes.subarray(start));
      expect(text.includes('\uFFFD'), `start ${start}`).toBe(false);
      expect('aé✓😀z'.endsWith(text)).toBe(true);
    }
  });
});

describe('host key fingerprints', () => {
  // ssh-keygen -l -E sha256 prints SHA256:bsS+9vmqiKA4CR3Mh/ZLNj47/RnEX5mHwRmvYuNmiyk for this key.
  const blob = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAILqMagUSqeIAonQo/et2h9yopRCtXTL5KjV7Yddkku9s', 'base64');

  it('match what ssh-keygen prints', () => {
    expect(fingerprintOf(blob)).toBe('SHA256:bsS+9vmqiKA4CR3Mh/ZLNj47/RnEX5mHwRmvYuNmiyk');
    expect(keyTypeOf(blob)).toBe('ssh-ed25519');
  });

  it('parse only the SHA256 form', () => {
    expect(parseFingerprint('SHA256:bsS+9vmqiKA4CR3Mh/ZLNj47/RnEX5mHwRmvYuNmiyk')).toHaveLength(32);
    for (const bad of ['MD5:aa:bb', 'SHA256:short', 'bsS+9vmqiKA4CR3Mh/ZLNj47/RnEX5mHwRmvYuNmiyk', '']) {
      expect(() => parseFingerprint(bad), bad).toThrow(/fingerprint/);
    }
  });
});
