// Template and machine bodies are checked before anything is stored; every refusal names its field.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ServiceError } from '../../services/errors.js';
import { validateMachine } from '../../services/machines.js';
import { validateTemplate } from '../../services/templates.js';

function fieldOf(work: () => unknown): string | undefined {
  try {
    work();
  } catch (error) {
    if (error instanceof ServiceError && error.code === 'invalid') return error.field;
    throw error;
  }
  throw new Error('expected a refusal');
}

const template = { name: 'spirals', command: 'python train.py' };

describe('template bodies', () => {
  it('accepts a minimal template and keeps shell metacharacters verbatim', () => {
    const values = validateTemplate({ ...template, command: "echo '$(rm -rf /)'; `id` | cat && x" }, 'create');
    expect(values.command).toBe("echo '$(rm -rf /)'; `id` | cat && x");
  });

  it.each([
    [{ command: 'x' }, 'name'],
    [{ name: 'x' }, 'command'],
    [{ ...template, name: '' }, 'name'],
    [{ ...template, name: 'x'.repeat(201) }, 'name'],
    [{ ...template, name: 12 }, 'name'],
    [{ ...template, name: 'a\u0000b' }, 'name'],
    [{ ...template, name: 'a\ud800b' }, 'name'],
    [{ ...template, command: '   ' }, 'command'],
    [{ ...template, command: 'x'.repeat(64 * 1024 + 1) }, 'command'],
    [{ ...template, command: 'é'.repeat(32 * 1024 + 1) }, 'command'],
    [{ ...template, env: { '1A': 'x' } }, 'env.1A'],
    [{ ...template, env: { 'A-B': 'x' } }, 'env.A-B'],
    [{ ...template, env: { TRAINYARD_PARAMS: '{}' } }, 'env.TRAINYARD_PARAMS'],
    [{ ...template, env: { trainyard_run_dir: '/' } }, 'env.trainyard_run_dir'],
    [{ ...template, env: { A: 1 } }, 'env.A'],
    [{ ...template, env: ['A'] }, 'env'],
    [{ ...template, params: [1] }, 'params'],
    [{ ...template, params: { big: 'x'.repeat(65 * 1024) } }, 'params'],
    [{ ...template, params: { a: 'x\u0000' } }, 'params.a'],
    [{ ...template, totalSteps: 0 }, 'totalSteps'],
    [{ ...template, totalSteps: 1.5 }, 'totalSteps'],
    [{ ...template, totalSteps: '10' }, 'totalSteps'],
    [{ ...template, stopGraceSeconds: 3601 }, 'stopGraceSeconds'],
    [{ ...template, stopGraceSeconds: -1 }, 'stopGraceSeconds'],
    [{ ...template, surprise: true }, 'surprise'],
  ])('refuses %j on field %s', (body, field) => {
    expect(fieldOf(() => validateTemplate(body, 'create'))).toBe(field);
  });

  it('patches only the fields given, and null clears the optional ones', () => {
    expect(validateTemplate({ totalSteps: null, workingDir: null }, 'patch')).toEqual({
      totalSteps: null,
      workingDir: null,
    });
    expect(validateTemplate({}, 'patch')).toEqual({});
  });

  it('keeps a "__proto__" parameter as plain data', () => {
    const values = validateTemplate({ ...template, params: JSON.parse('{"__proto__": {"x": 1}}') }, 'create');
    expect(Object.keys(values.params!)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe('machine bodies', () => {
  const keysDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-keys-'));
  fs.writeFileSync(
    path.join(keysDir, 'id_ed25519'),
    '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n',
  );
  const deps = { secret: 'unit-test-secret-0123456789', keysDir };
  const machine = { name: 'gpu-1', address: 'gpu-1.lan:2222', sshUser: 'train', privateKeyPath: 'id_ed25519' };

  it('stores a pasted key only encrypted', () => {
    const key = '-----BEGIN OPENSSH PRIVATE KEY-----\nsecretbody\n-----END OPENSSH PRIVATE KEY-----\n';
    const values = validateMachine(deps, { ...machine, privateKeyPath: undefined, privateKey: key }, 'create');
    expect(values.privateKeyEncrypted).toMatch(/^v1\./);
    expect(JSON.stringify(values)).not.toContain('secretbody');
  });

  it.each([
    [{ ...machine, address: 'host; rm -rf /' }, 'address'],
    [{ ...machine, address: '$(id):22' }, 'address'],
    [{ ...machine, address: 'host:99999' }, 'address'],
    [{ ...machine, address: '' }, 'address'],
    [{ ...machine, name: 'local' }, 'name'],
    [{ ...machine, sshUser: '-oProxyCommand=x' }, 'sshUser'],
    [{ ...machine, privateKeyPath: '../etc/passwd' }, 'privateKeyPath'],
    [{ ...machine, privateKeyPath: '/etc/passwd' }, 'privateKeyPath'],
    [{ ...machine, privateKeyPath: 'missing' }, 'privateKeyPath'],
    [{ ...machine, privateKeyPath: undefined }, 'privateKey'],
    [{ ...machine, privateKeyPath: undefined, privateKey: 'not a key' }, 'privateKey'],
    [{ ...machine, hostKeyFingerprint: 'MD5:aa:bb' }, 'hostKeyFingerprint'],
    [{ ...machine, slots: 0 }, 'slots'],
    [{ ...machine, slots: 65 }, 'slots'],
    [{ ...machine, gpus: [0, 0] }, 'gpus'],
    [{ ...machine, gpus: [-1] }, 'gpus.0'],
    [{ ...machine, gpus: '0,1' }, 'gpus'],
    [{ ...machine, lostTimeoutSeconds: 9 }, 'lostTimeoutSeconds'],
    [{ ...machine, enabled: 'yes' }, 'enabled'],
  ])('refuses %j on field %s', (body, field) => {
    expect(fieldOf(() => validateMachine(deps, body, 'create'))).toBe(field);
  });

  it('accepts IPv6 and a pinned fingerprint', () => {
    const fingerprint = `SHA256:${'A'.repeat(43)}`;
    const values = validateMachine(
      deps,
      { ...machine, address: '[::1]:22', hostKeyFingerprint: fingerprint },
      'create',
    );
    expect(values.address).toBe('[::1]:22');
    expect(values.hostKeyFingerprint).toBe(fingerprint);
  });
});
