// How lib/config.ts reads the connection to an outside Temporal (the variables and TOML
// profiles of @temporalio/envconfig), and the one line per mistake it answers with.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, SETTINGS } from '../../lib/config.js';
import { makeCertificates, type Certificates } from '../support/certificates.js';

const cwd = path.join(os.tmpdir(), 'trainyard-config-cwd');
let dir: string;
let certs: Certificates;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-tls-config-'));
  certs = makeCertificates(path.join(dir, 'certs'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env, cwd);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe((error as ConfigError).problems.join('\n'));
    return (error as ConfigError).problems;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

function writeFile(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

describe('Temporal connection settings', () => {
  it('reads mTLS from the TEMPORAL_TLS_* variables: CA, client certificate and key, server name', () => {
    const config = loadConfig(
      {
        TEMPORAL_ADDRESS: 'temporal.internal:7233',
        TEMPORAL_NAMESPACE: 'ml',
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.ca,
        TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert,
        TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey,
        TEMPORAL_TLS_SERVER_NAME: 'localhost',
      },
      cwd,
    );
    expect(config.temporal.address).toBe('temporal.internal:7233');
    expect(config.temporal.namespace).toBe('ml');
    expect(config.temporal.apiKey).toBeNull();
    expect(config.temporal.tls).toEqual({
      serverNameOverride: 'localhost',
      serverRootCACertificate: new Uint8Array(fs.readFileSync(certs.ca)),
      clientCertPair: {
        crt: new Uint8Array(fs.readFileSync(certs.clientCert)),
        key: new Uint8Array(fs.readFileSync(certs.clientKey)),
      },
    });
  });

  it('turns TLS on for an API key, and off again for TEMPORAL_TLS=false', () => {
    const cloud = loadConfig(
      { TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_NAMESPACE: 'ns.acct', TEMPORAL_API_KEY: 'key-123' },
      cwd,
    );
    expect(cloud.temporal).toMatchObject({
      address: 'ns.acct.tmprl.cloud:7233',
      namespace: 'ns.acct',
      apiKey: 'key-123',
      tls: true,
    });
    expect(
      loadConfig({ TEMPORAL_ADDRESS: 'proxy:7233', TEMPORAL_API_KEY: 'k', TEMPORAL_TLS: 'false' }, cwd).temporal.tls,
    ).toBe(false);
  });

  it('reads TEMPORAL_TLS as a boolean (yes/on too) and refuses anything else, naming it', () => {
    expect(loadConfig({ TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS: 'yes' }, cwd).temporal.tls).toBeTruthy();
    expect(loadConfig({ TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS: 'off' }, cwd).temporal.tls).toBe(false);
    expect(problems({ TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS: 'maybe' })).toEqual([
      'TEMPORAL_TLS=maybe is not a boolean; set TEMPORAL_TLS to true or false.',
    ]);
  });

  it('sends TEMPORAL_GRPC_META_* as headers', () => {
    expect(
      loadConfig({ TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_GRPC_META_X_TENANT: 'lab' }, cwd).temporal.grpcMeta,
    ).toEqual({ 'x-tenant': 'lab' });
  });

  it('treats blank TLS variables as unset', () => {
    const config = loadConfig(
      { TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS_CLIENT_CERT_PATH: ' ', TEMPORAL_API_KEY: '', TEMPORAL_TLS: '' },
      cwd,
    );
    expect(config.temporal).toMatchObject({ tls: false, apiKey: null });
  });

  it('refuses a client certificate without its key, and a key without its certificate', () => {
    expect(problems({ TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert })).toEqual([
      `TEMPORAL_TLS_CLIENT_CERT_PATH=${certs.clientCert} is set without its private key; set TEMPORAL_TLS_CLIENT_KEY_PATH too.`,
    ]);
    expect(problems({ TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey })).toEqual([
      `TEMPORAL_TLS_CLIENT_KEY_PATH=${certs.clientKey} is set without its certificate; set TEMPORAL_TLS_CLIENT_CERT_PATH too.`,
    ]);
  });

  it('names a missing file, a file that is not PEM, and a key that is not the certificate’s', () => {
    const missing = path.join(dir, 'nope.pem');
    expect(problems({ TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS_SERVER_CA_CERT_PATH: missing })).toEqual([
      `TEMPORAL_TLS_SERVER_CA_CERT_PATH=${missing}: no such file.`,
    ]);
    const notPem = writeFile('not.pem', 'hello\n');
    expect(problems({ TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS_SERVER_CA_CERT_PATH: notPem })).toEqual([
      `TEMPORAL_TLS_SERVER_CA_CERT_PATH=${notPem} does not hold a PEM CA certificate.`,
    ]);
    expect(
      problems({
        TEMPORAL_ADDRESS: 'temporal:7233',
        TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert,
        TEMPORAL_TLS_CLIENT_KEY_PATH: certs.serverKey,
      }),
    ).toEqual([
      `TEMPORAL_TLS_CLIENT_KEY_PATH=${certs.serverKey} is not the private key of TEMPORAL_TLS_CLIENT_CERT_PATH=${certs.clientCert}.`,
    ]);
    // A key file given as the certificate and the other way round.
    expect(
      problems({
        TEMPORAL_ADDRESS: 'temporal:7233',
        TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientKey,
        TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientCert,
      }),
    ).toEqual([
      `TEMPORAL_TLS_CLIENT_CERT_PATH=${certs.clientKey} does not hold a PEM certificate.`,
      `TEMPORAL_TLS_CLIENT_KEY_PATH=${certs.clientCert} does not hold a PEM private key.`,
    ]);
  });

  it('refuses TLS settings with TEMPORAL_TLS=false, and TLS or an API key with no address to use them on', () => {
    expect(
      problems({
        TEMPORAL_ADDRESS: 'temporal:7233',
        TEMPORAL_TLS: 'false',
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.ca,
      }),
    ).toEqual([
      'TEMPORAL_TLS=false turns TLS off, yet TEMPORAL_TLS_SERVER_CA_CERT_PATH is set; drop one or the other.',
    ]);
    expect(problems({ TEMPORAL_API_KEY: 'k', TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.ca })).toEqual([
      'TEMPORAL_API_KEY, TEMPORAL_TLS_SERVER_CA_CERT_PATH are set without TEMPORAL_ADDRESS; set the address of the ' +
        'server they are for (the dev server npm start runs takes neither).',
    ]);
  });

  it('reports every mistake at once, one line each', () => {
    const lines = problems({
      PORT: 'abc',
      TEMPORAL_ADDRESS: 'temporal',
      TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: path.join(dir, 'missing-ca.pem'),
      LOG_LEVEL: 'loud',
    });
    expect(lines).toHaveLength(5);
    expect(lines.map((line) => line.split(/[=\s]/)[0])).toEqual([
      'LOG_LEVEL',
      'TEMPORAL_ADDRESS',
      'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
      'TEMPORAL_TLS_CLIENT_CERT_PATH',
      'PORT',
    ]);
    for (const line of lines) expect(line).not.toContain('\n');
  });
});

describe('Temporal profiles (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE)', () => {
  const profiles = () =>
    writeFile(
      'temporal.toml',
      [
        '[profile.default]',
        'address = "127.0.0.1:7233"',
        '',
        '[profile.prod]',
        'address = "temporal.prod:7233"',
        'namespace = "training"',
        '[profile.prod.tls]',
        `server_ca_cert_path = "${certs.ca}"`,
        `client_cert_path = "${certs.clientCert}"`,
        `client_key_path = "${certs.clientKey}"`,
        'server_name = "localhost"',
        '',
        '[profile.broken.tls]',
        `client_cert_path = "${path.join(dir, 'gone.pem')}"`,
        `client_key_path = "${certs.clientKey}"`,
        '',
      ].join('\n'),
    );

  it('reads the named profile, with the variables overriding it', () => {
    const file = profiles();
    const config = loadConfig(
      { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod', TEMPORAL_NAMESPACE: 'override' },
      cwd,
    );
    expect(config.temporal).toMatchObject({
      address: 'temporal.prod:7233',
      namespace: 'override',
      profile: `profile "prod" in ${file}`,
    });
    expect(config.temporal.tls).toMatchObject({
      serverNameOverride: 'localhost',
      clientCertPair: { crt: new Uint8Array(fs.readFileSync(certs.clientCert)) },
    });
    expect(loadConfig({ TEMPORAL_CONFIG_FILE: file }, cwd).temporal).toMatchObject({
      address: '127.0.0.1:7233',
      tls: false,
      profile: `profile "default" in ${file}`,
    });
  });

  it('finds TEMPORAL_PROFILE in the standard file when TEMPORAL_CONFIG_FILE is unset', () => {
    const configHome = path.join(dir, 'xdg');
    fs.mkdirSync(path.join(configHome, 'temporalio'), { recursive: true });
    fs.copyFileSync(profiles(), path.join(configHome, 'temporalio', 'temporal.toml'));
    expect(loadConfig({ XDG_CONFIG_HOME: configHome, TEMPORAL_PROFILE: 'prod' }, cwd).temporal.address).toBe(
      'temporal.prod:7233',
    );
  });

  it('reads no profile file unless one of the two variables asks for it', () => {
    const home = path.join(dir, 'home');
    fs.mkdirSync(path.join(home, '.config', 'temporalio'), { recursive: true });
    fs.writeFileSync(
      path.join(home, '.config', 'temporalio', 'temporal.toml'),
      '[profile.default]\naddress = "elsewhere:7233"\n',
    );
    expect(loadConfig({ HOME: home }, cwd).temporal).toMatchObject({ address: null, profile: null });
  });

  it('names a missing file, an unknown profile, a file that is not TOML, and a bad path inside a profile', () => {
    const missing = path.join(dir, 'missing.toml');
    expect(problems({ TEMPORAL_CONFIG_FILE: missing })).toEqual([
      `TEMPORAL_CONFIG_FILE=${missing}: no such file; point it at a TOML file of Temporal profiles, or unset it.`,
    ]);
    const file = profiles();
    expect(problems({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' })).toEqual([
      `TEMPORAL_PROFILE=staging: ${file} has no such profile (it has default, prod, broken).`,
    ]);
    const notToml = writeFile('bad.toml', '[profile.default\naddress = 1\n');
    const lines = problems({ TEMPORAL_CONFIG_FILE: notToml });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^TEMPORAL_CONFIG_FILE=${notToml} is not a TOML file of Temporal profiles: .+\\.$`),
    );
    expect(
      problems({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'broken', TEMPORAL_ADDRESS: 'temporal:7233' }),
    ).toEqual([`profile "broken" in ${file}: tls.client_cert_path=${path.join(dir, 'gone.pem')}: no such file.`]);
  });
});

describe('the README configuration table', () => {
  it('lists every setting lib/config.ts reads, and nothing else', () => {
    const readme = fs.readFileSync(path.resolve('README.md'), 'utf8');
    const section = readme.slice(
      readme.indexOf('## Configuration'),
      readme.indexOf('\n## ', readme.indexOf('## Configuration') + 1),
    );
    const rows = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((match) => match[1]);
    expect(rows).toEqual(SETTINGS.map((setting) => setting.name));
  });
});
