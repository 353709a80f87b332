// The one config module (docs/design.md §7): defaults a bare machine gets, and a ConfigError
// naming the variable to set for every bad value; and where the Temporal CLI comes from.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveBuildId } from '../../lib/build-id.js';
import { ConfigError, loadConfig } from '../../lib/config.js';
import { findTemporalCli, TemporalCliError } from '../../lib/temporal-cli.js';

const cwd = path.join(os.tmpdir(), 'trainyard-config-cwd');

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env, cwd);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('gives a bare machine the documented defaults', () => {
    const config = loadConfig({}, cwd);
    expect(config.port).toBe(3000);
    expect(config.host).toBe('127.0.0.1');
    expect(config.dataDir).toBe(path.join(cwd, 'data'));
    expect(config.databaseUrl).toBeNull();
    expect(config.temporal).toEqual({
      address: null,
      namespace: 'default',
      uiUrl: null,
      devPort: 7233,
      devUiPort: 8233,
      cliPath: null,
      tls: false,
      apiKey: null,
      grpcMeta: {},
      profile: null,
    });
    expect(config.secret).toBeNull();
    expect(config.keysDir).toBeNull();
    expect(config.localMachine).toBe(false);
    expect(config.adminPassword).toBeNull();
    expect(config.logLevel).toBe('info');
  });

  it('resolves a relative TRAINYARD_DATA_DIR and TRAINYARD_KEYS_DIR against the working directory', () => {
    const config = loadConfig({ TRAINYARD_DATA_DIR: 'var/ty', TRAINYARD_KEYS_DIR: './keys' }, cwd);
    expect(config.dataDir).toBe(path.join(cwd, 'var', 'ty'));
    expect(config.keysDir).toBe(path.join(cwd, 'keys'));
    expect(loadConfig({ TRAINYARD_DATA_DIR: '/srv/trainyard' }, cwd).dataDir).toBe('/srv/trainyard');
  });

  it('reads every setting that is given', () => {
    const config = loadConfig(
      {
        PORT: '8080',
        HOST: '0.0.0.0',
        DATABASE_URL: 'postgresql://u:p@db:5432/trainyard',
        TEMPORAL_ADDRESS: 'temporal:7233',
        TEMPORAL_NAMESPACE: 'ml',
        TEMPORAL_UI_URL: 'https://temporal.example/ui',
        TRAINYARD_TEMPORAL_PORT: '17233',
        TRAINYARD_TEMPORAL_UI_PORT: '18233',
        TEMPORAL_CLI: '/opt/temporal',
        TRAINYARD_SECRET: 'a-secret-of-sixteen+',
        TRAINYARD_LOCAL_MACHINE: 'yes',
        TRAINYARD_ADMIN_PASSWORD: 'hunter2hunter2',
        LOG_LEVEL: 'debug',
      },
      cwd,
    );
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      databaseUrl: 'postgresql://u:p@db:5432/trainyard',
      temporal: {
        address: 'temporal:7233',
        namespace: 'ml',
        uiUrl: 'https://temporal.example/ui',
        devPort: 17233,
        devUiPort: 18233,
        cliPath: '/opt/temporal',
      },
      secret: 'a-secret-of-sixteen+',
      localMachine: true,
      adminPassword: 'hunter2hunter2',
      logLevel: 'debug',
    });
  });

  it('treats an empty or blank variable as unset', () => {
    const config = loadConfig({ PORT: '', DATABASE_URL: '   ', TEMPORAL_ADDRESS: '' }, cwd);
    expect(config.port).toBe(3000);
    expect(config.databaseUrl).toBeNull();
    expect(config.temporal.address).toBeNull();
  });

  it.each(['abc', '0', '-1', '65536', '80.5', '0x50', '8e3'])(
    'rejects PORT=%s with a ConfigError naming PORT',
    (value) => {
      expect(configError({ PORT: value }).message).toMatch(/\bPORT\b.*set PORT/);
    },
  );

  it.each(['TRAINYARD_TEMPORAL_PORT', 'TRAINYARD_TEMPORAL_UI_PORT'])('rejects a bad %s naming it', (name) => {
    expect(configError({ [name]: '70000' }).message).toContain(`set ${name}`);
  });

  it.each(['mysql://db/trainyard', 'http://db:5432/x', 'not a url'])(
    'rejects DATABASE_URL=%s naming DATABASE_URL',
    (value) => {
      const error = configError({ DATABASE_URL: value });
      expect(error.message).toContain('DATABASE_URL');
    },
  );

  it('does not echo a DATABASE_URL password in its error', () => {
    expect(configError({ DATABASE_URL: 'mysql://u:topsecretpw@db/x' }).message).not.toContain('topsecretpw');
  });

  it.each(['localhost', 'http://127.0.0.1:7233', '127.0.0.1:', '127.0.0.1:99999', '127.0.0.1:0', 'a b:7233'])(
    'rejects TEMPORAL_ADDRESS=%s naming TEMPORAL_ADDRESS',
    (value) => {
      expect(configError({ TEMPORAL_ADDRESS: value }).message).toMatch(/^TEMPORAL_ADDRESS=.*host:port/);
    },
  );

  it('accepts a TEMPORAL_ADDRESS with a host name or an IPv6 address', () => {
    expect(loadConfig({ TEMPORAL_ADDRESS: 'temporal-frontend.svc:7233' }, cwd).temporal.address).toBe(
      'temporal-frontend.svc:7233',
    );
    expect(loadConfig({ TEMPORAL_ADDRESS: '[::1]:7233' }, cwd).temporal.address).toBe('[::1]:7233');
  });

  it('rejects a TEMPORAL_UI_URL that is not http(s) naming it', () => {
    expect(configError({ TEMPORAL_UI_URL: 'ftp://x/' }).message).toContain('TEMPORAL_UI_URL');
  });

  it('rejects a TRAINYARD_SECRET shorter than 16 characters naming it', () => {
    expect(configError({ TRAINYARD_SECRET: 'short' }).message).toContain('TRAINYARD_SECRET');
    expect(loadConfig({ TRAINYARD_SECRET: '0123456789abcdef' }, cwd).secret).toBe('0123456789abcdef');
  });

  it.each(['maybe', '2', 'tru'])('rejects TRAINYARD_LOCAL_MACHINE=%s as a boolean, naming it', (value) => {
    expect(configError({ TRAINYARD_LOCAL_MACHINE: value }).message).toMatch(
      /^TRAINYARD_LOCAL_MACHINE=.*set TRAINYARD_LOCAL_MACHINE to true or false/,
    );
  });

  it.each([
    ['true', true],
    ['ON', true],
    ['1', true],
    ['no', false],
    ['False', false],
    ['0', false],
  ])('reads TRAINYARD_LOCAL_MACHINE=%s as %s', (value, expected) => {
    expect(loadConfig({ TRAINYARD_LOCAL_MACHINE: value }, cwd).localMachine).toBe(expected);
  });

  it('rejects an unknown LOG_LEVEL naming it', () => {
    expect(configError({ LOG_LEVEL: 'verbose' }).message).toContain('LOG_LEVEL');
  });

  it('reads TRAINYARD_NOTIFY_RETRY_INITIAL_MS (1 s by default) and rejects what is not 10 ms to 10 min', () => {
    expect(loadConfig({}, cwd).notifyRetryInitialMs).toBe(1000);
    expect(loadConfig({ TRAINYARD_NOTIFY_RETRY_INITIAL_MS: '200' }, cwd).notifyRetryInitialMs).toBe(200);
    for (const value of ['0', '5', '-1', '1.5', 'soon', '600001'])
      expect(configError({ TRAINYARD_NOTIFY_RETRY_INITIAL_MS: value }).message).toContain(
        'TRAINYARD_NOTIFY_RETRY_INITIAL_MS',
      );
  });
});

describe('findTemporalCli', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-cli-'));
    dirs.push(dir);
    return dir;
  };
  const script = (dir: string, name: string, mode: number) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, '#!/bin/sh\necho temporal\n', { mode });
    fs.chmodSync(file, mode);
    return file;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a TEMPORAL_CLI that is not executable with an error naming TEMPORAL_CLI', () => {
    const dir = tempDir();
    const notExecutable = script(dir, 'temporal', 0o644);
    expect(() => findTemporalCli({ TEMPORAL_CLI: notExecutable, PATH: '' }, dir)).toThrowError(TemporalCliError);
    expect(() => findTemporalCli({ TEMPORAL_CLI: notExecutable, PATH: '' }, dir)).toThrowError(
      /TEMPORAL_CLI=.*not an executable file/,
    );
  });

  it('refuses a TEMPORAL_CLI that does not exist, or names a directory', () => {
    const dir = tempDir();
    expect(() => findTemporalCli({ TEMPORAL_CLI: path.join(dir, 'missing'), PATH: '' }, dir)).toThrowError(
      /TEMPORAL_CLI/,
    );
    expect(() => findTemporalCli({ TEMPORAL_CLI: dir, PATH: '' }, dir)).toThrowError(/TEMPORAL_CLI/);
  });

  it('uses TEMPORAL_CLI when it is set, ahead of a temporal on PATH', () => {
    const explicit = script(tempDir(), 'my-temporal', 0o755);
    const onPathDir = tempDir();
    script(onPathDir, 'temporal', 0o755);
    expect(findTemporalCli({ TEMPORAL_CLI: explicit, PATH: onPathDir }, tempDir())).toEqual({
      path: explicit,
      source: 'TEMPORAL_CLI',
    });
  });

  it('finds a temporal on a PATH directory with source PATH, skipping non-executable ones', () => {
    const first = tempDir();
    script(first, 'temporal', 0o644);
    const second = tempDir();
    const found = script(second, 'temporal', 0o755);
    const env = { PATH: [path.join(first, 'nope'), first, second].join(path.delimiter), XDG_CACHE_HOME: tempDir() };
    expect(findTemporalCli(env, tempDir())).toEqual({ path: found, source: 'PATH' });
  });

  it('finds a cached build in the project tools folder when PATH has none', () => {
    const root = tempDir();
    fs.mkdirSync(path.join(root, '.tools', 'bin'), { recursive: true });
    const cached = script(path.join(root, '.tools', 'bin'), 'temporal', 0o755);
    expect(findTemporalCli({ PATH: tempDir(), XDG_CACHE_HOME: tempDir() }, root)).toEqual({
      path: cached,
      source: 'cache',
    });
  });
});

describe('TRUST_PROXY', () => {
  const cwd = '/srv';
  it('trusts nobody by default and for false, 0 or off', () => {
    expect(loadConfig({}, cwd).trustProxy).toBe(false);
    for (const value of ['false', '0', 'off', 'no'])
      expect(loadConfig({ TRUST_PROXY: value }, cwd).trustProxy).toBe(false);
  });

  it('reads true, a hop count, and a comma list of addresses, CIDRs and range names', () => {
    expect(loadConfig({ TRUST_PROXY: 'true' }, cwd).trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: '1' }, cwd).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: '2' }, cwd).trustProxy).toBe(2);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.5, 172.18.0.0/16,::1,fd00::/8,loopback' }, cwd).trustProxy).toEqual([
      '10.0.0.5',
      '172.18.0.0/16',
      '::1',
      'fd00::/8',
      'loopback',
    ]);
  });

  it.each(['evil.example', '10.0.0.0/33', '10.0.0.1/8/1', '300.1.1.1', 'maybe'])(
    'rejects TRUST_PROXY=%s naming it',
    (value) => {
      expect(() => loadConfig({ TRUST_PROXY: value }, cwd)).toThrow(/^TRUST_PROXY=.*is not an address or CIDR/);
    },
  );
});

describe('the build id and the worker metrics addresses', () => {
  it('are unset by default: the build id from lib/build-id.ts, no metrics endpoints', () => {
    const config = loadConfig({}, cwd);
    expect(config.buildId).toBeNull();
    expect(config.workerMetricsAddress).toBeNull();
    expect(config.workerSdkMetricsAddress).toBeNull();
  });

  it('reads TRAINYARD_BUILD_ID and host:port addresses (names, IPv4, bracketed IPv6)', () => {
    const config = loadConfig(
      {
        TRAINYARD_BUILD_ID: '2026.12.1+abc123',
        TRAINYARD_WORKER_METRICS_ADDRESS: '0.0.0.0:9464',
        TRAINYARD_WORKER_SDK_METRICS_ADDRESS: '[::1]:9465',
      },
      cwd,
    );
    expect(config.buildId).toBe('2026.12.1+abc123');
    expect(config.workerMetricsAddress).toBe('0.0.0.0:9464');
    expect(config.workerSdkMetricsAddress).toBe('[::1]:9465');
    expect(loadConfig({ TRAINYARD_WORKER_METRICS_ADDRESS: 'worker-1:9464' }, cwd).workerMetricsAddress).toBe(
      'worker-1:9464',
    );
  });

  it.each(['9464', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', 'http://127.0.0.1:9464', '::1:9464'])(
    'rejects TRAINYARD_WORKER_METRICS_ADDRESS=%s naming it and the form to use',
    (value) => {
      expect(configError({ TRAINYARD_WORKER_METRICS_ADDRESS: value }).problems).toEqual([
        `TRAINYARD_WORKER_METRICS_ADDRESS=${value} is not host:port; set it like 127.0.0.1:9464 (0.0.0.0:9464 for every interface).`,
      ]);
      expect(configError({ TRAINYARD_WORKER_SDK_METRICS_ADDRESS: value }).message).toMatch(
        /^TRAINYARD_WORKER_SDK_METRICS_ADDRESS=.* is not host:port/,
      );
    },
  );

  it('refuses the same address for both endpoints', () => {
    expect(
      configError({
        TRAINYARD_WORKER_METRICS_ADDRESS: '127.0.0.1:9464',
        TRAINYARD_WORKER_SDK_METRICS_ADDRESS: '127.0.0.1:9464',
      }).message,
    ).toMatch(/are the same; give each its own port/);
  });

  it('refuses a build id with spaces or over 255 characters', () => {
    expect(configError({ TRAINYARD_BUILD_ID: 'my build' }).message).toMatch(/^TRAINYARD_BUILD_ID=my build must be/);
    expect(configError({ TRAINYARD_BUILD_ID: 'x'.repeat(256) }).message).toMatch(/^TRAINYARD_BUILD_ID=x+ must be/);
  });
});

describe('resolveBuildId', () => {
  it('takes TRAINYARD_BUILD_ID as given, else the package version and, in a git checkout, the commit', () => {
    expect(resolveBuildId('given-1')).toBe('given-1');
    const version = (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string }).version;
    expect(resolveBuildId(null)).toMatch(new RegExp(`^${version.replace(/\./g, '\\.')}\\+[0-9a-f]{12}$`));
    const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-build-id-'));
    fs.writeFileSync(path.join(bare, 'package.json'), JSON.stringify({ version: '9.8.7' }));
    expect(resolveBuildId(null, bare)).toBe('9.8.7');
  });
});
