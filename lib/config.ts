// The one place that reads process.env. Every setting of docs/design.md §7 is parsed and
// validated here at boot, so a bad value fails fast with one line per mistake, each saying
// what to set.
import net from 'node:net';
import path from 'node:path';
import type { TLSConfig } from '@temporalio/client';
import { bindAddressOf, boolOf, ConfigError, portOf, read, urlOf, type Env } from './config-read.js';
import { OIDC_SETTINGS, oidcConfigOf, type OidcConfig } from './oidc-config.js';
import { temporalConnectionOf } from './temporal-config.js';

export { ConfigError };

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | null;
  temporal: {
    /** Set → use that server; null → `npm start` runs a dev server itself. */
    address: string | null;
    namespace: string;
    /** Browser-facing Temporal UI; null until known (the dev server's UI port decides it). */
    uiUrl: string | null;
    /** Where the dev server listens when we start it ourselves. */
    devPort: number;
    devUiPort: number;
    /** Explicit Temporal CLI binary (`TEMPORAL_CLI`). */
    cliPath: string | null;
    /** false = plaintext; true = TLS trusting the system's CAs; or a CA, a client certificate, a server name. */
    tls: TLSConfig | boolean;
    /** Sent with every call (Temporal Cloud); it turns TLS on unless TEMPORAL_TLS=false. */
    apiKey: string | null;
    /** gRPC headers sent with every call (`TEMPORAL_GRPC_META_<NAME>`, a profile's `grpc_meta`). */
    grpcMeta: Record<string, string>;
    /** `name in file` of the TOML profile read, for messages; null when no profile file was read. */
    profile: string | null;
  };
  dataDir: string;
  /** Null → generated into the data directory on first start (lib/secret.ts). */
  secret: string | null;
  keysDir: string | null;
  localMachine: boolean;
  adminPassword: string | null;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /**
   * Whose X-Forwarded-For / -Proto the web server believes (Fastify's `trustProxy`):
   * false (nobody: the socket's address is the client), a hop count, or proxy
   * addresses and CIDRs. `true` believes any sender and is for a proxy that is the
   * only way in.
   */
  trustProxy: boolean | number | string[];
  /** Null → lib/build-id.ts makes one from the package version and the git commit. */
  buildId: string | null;
  /** host:port the worker serves its own Prometheus `/metrics` on; null = none. */
  workerMetricsAddress: string | null;
  /** host:port the Temporal SDK serves its runtime metrics on (workers); null = none. */
  workerSdkMetricsAddress: string | null;
  /** The address browsers open (TRAINYARD_PUBLIC_URL), without a trailing slash; null = unset. */
  publicUrl: string | null;
  /** Single sign-on; null = off (lib/oidc-config.ts). */
  oidc: OidcConfig | null;
  /** false → no password form, POST /login refused (TRAINYARD_LOCAL_LOGIN). */
  localLogin: boolean;
  /** The first wait before a failed notification delivery is retried (it doubles up to 10 min, for 24 h). */
  notifyRetryInitialMs: number;
}

/** The names proxy-addr (under Fastify's trustProxy) knows for address ranges. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function trustProxyOf(env: Env, name: string): Config['trustProxy'] {
  const raw = read(env, name);
  if (raw === undefined) return false;
  const lower = raw.toLowerCase();
  if (['false', 'no', 'off'].includes(lower)) return false;
  if (['true', 'yes', 'on'].includes(lower)) return true;
  // Digits: a hop count (1 = the one proxy in front; 0 = none, as false).
  if (/^\d{1,2}$/.test(raw)) return Number(raw) === 0 ? false : Number(raw);
  const entries = raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  for (const entry of entries) {
    if (PROXY_RANGE_NAMES.has(entry)) continue;
    const [address = '', prefix, extra] = entry.split('/');
    const family = net.isIP(address);
    const bits = prefix === undefined ? null : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
    if (family === 0 || extra !== undefined || (bits !== null && !(bits >= 0 && bits <= (family === 4 ? 32 : 128)))) {
      throw new ConfigError(
        `${name}=${raw}: "${entry}" is not an address or CIDR; set ${name} to false, true, a hop count, or a comma list of proxy addresses/CIDRs (e.g. 10.0.0.5,172.18.0.0/16).`,
      );
    }
  }
  return entries.length === 0 ? false : entries;
}

/** Reads and checks every setting; throws one ConfigError listing every mistake, a line each. */
export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const problems: string[] = [];
  const check = <T>(parse: () => T, fallback: T): T => {
    try {
      return parse();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.problems);
      return fallback;
    }
  };
  const secret = read(env, 'TRAINYARD_SECRET') ?? null;
  if (secret !== null && secret.length < 16) {
    problems.push('TRAINYARD_SECRET is too short; use at least 16 characters (or unset it to generate one).');
  }
  const logLevel = (read(env, 'LOG_LEVEL') ?? 'info') as Config['logLevel'];
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    problems.push(`LOG_LEVEL=${logLevel} is not one of debug, info, warn, error.`);
  }
  const keysDir = read(env, 'TRAINYARD_KEYS_DIR');
  const notifyRetry = read(env, 'TRAINYARD_NOTIFY_RETRY_INITIAL_MS') ?? '1000';
  if (!/^\d{1,9}$/.test(notifyRetry) || Number(notifyRetry) < 10 || Number(notifyRetry) > 600_000) {
    problems.push(
      `TRAINYARD_NOTIFY_RETRY_INITIAL_MS=${notifyRetry} must be a whole number of milliseconds from 10 to 600000.`,
    );
  }
  const connection = temporalConnectionOf(env, problems);
  const sso = oidcConfigOf(env, problems);
  const config: Config = {
    port: check(() => portOf(env, 'PORT', 3000), 3000),
    host: read(env, 'HOST') ?? '127.0.0.1',
    databaseUrl: check(() => urlOf(env, 'DATABASE_URL', ['postgres:', 'postgresql:']), null),
    temporal: {
      address: connection.address,
      namespace: connection.namespace,
      uiUrl: check(() => urlOf(env, 'TEMPORAL_UI_URL', ['http:', 'https:']), null),
      devPort: check(() => portOf(env, 'TRAINYARD_TEMPORAL_PORT', 7233), 7233),
      devUiPort: check(() => portOf(env, 'TRAINYARD_TEMPORAL_UI_PORT', 8233), 8233),
      cliPath: read(env, 'TEMPORAL_CLI') ?? null,
      tls: connection.tls,
      apiKey: connection.apiKey,
      grpcMeta: connection.grpcMeta,
      profile: connection.profile,
    },
    dataDir: path.resolve(cwd, read(env, 'TRAINYARD_DATA_DIR') ?? 'data'),
    secret,
    keysDir: keysDir ? path.resolve(cwd, keysDir) : null,
    localMachine: check(() => boolOf(env, 'TRAINYARD_LOCAL_MACHINE', false), false),
    adminPassword: read(env, 'TRAINYARD_ADMIN_PASSWORD') ?? null,
    logLevel,
    trustProxy: check(() => trustProxyOf(env, 'TRUST_PROXY'), false),
    buildId: read(env, 'TRAINYARD_BUILD_ID') ?? null,
    workerMetricsAddress: check(() => bindAddressOf(env, 'TRAINYARD_WORKER_METRICS_ADDRESS'), null),
    workerSdkMetricsAddress: check(() => bindAddressOf(env, 'TRAINYARD_WORKER_SDK_METRICS_ADDRESS'), null),
    publicUrl: sso.publicUrl,
    oidc: sso.oidc,
    localLogin: sso.localLogin,
    notifyRetryInitialMs: Number(notifyRetry),
  };
  if (config.workerMetricsAddress !== null && config.workerMetricsAddress === config.workerSdkMetricsAddress) {
    problems.push(
      'TRAINYARD_WORKER_METRICS_ADDRESS and TRAINYARD_WORKER_SDK_METRICS_ADDRESS are the same; give each its own port.',
    );
  }
  const buildId = config.buildId;
  if (buildId !== null && !/^[\x21-\x7e]{1,255}$/.test(buildId)) {
    problems.push(`TRAINYARD_BUILD_ID=${buildId} must be 1 to 255 printable characters without spaces.`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** loadConfig for a command's start: each mistake on a line of its own, then exit 1. */
export function loadConfigOrExit(env: Env = process.env): Config {
  try {
    return loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const line of error.problems) console.error(`trainyard: ${line}`);
    process.exit(1);
  }
}

/** The settings table the README shows; kept beside the parser so they cannot drift apart. */
export const SETTINGS: ReadonlyArray<{ name: string; default: string; meaning: string }> = [
  { name: 'PORT', default: '3000', meaning: 'HTTP port of the web server' },
  { name: 'HOST', default: '127.0.0.1', meaning: 'address the web server binds (0.0.0.0 to serve other machines)' },
  {
    name: 'DATABASE_URL',
    default: '(embedded PGlite)',
    meaning: 'PostgreSQL URL; unset → embedded PGlite in the data directory',
  },
  {
    name: 'TEMPORAL_ADDRESS',
    default: '(dev server)',
    meaning: 'Temporal frontend host:port; unset (and no profile address) → `npm start` runs a dev server',
  },
  { name: 'TEMPORAL_NAMESPACE', default: 'default', meaning: 'Temporal namespace' },
  {
    name: 'TEMPORAL_API_KEY',
    default: '(none)',
    meaning: 'API key sent with every call (Temporal Cloud); turns TLS on',
  },
  {
    name: 'TEMPORAL_TLS',
    default: 'false (true with an API key)',
    meaning: 'TLS to the frontend, trusting the system CAs unless a CA is given',
  },
  {
    name: 'TEMPORAL_TLS_CLIENT_CERT_PATH',
    default: '(none)',
    meaning: 'client certificate (PEM) for mTLS; needs the key below; turns TLS on',
  },
  { name: 'TEMPORAL_TLS_CLIENT_KEY_PATH', default: '(none)', meaning: 'private key (PEM) of that client certificate' },
  {
    name: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
    default: '(system CAs)',
    meaning: "CA certificate (PEM) that signed the server's certificate; turns TLS on",
  },
  {
    name: 'TEMPORAL_TLS_SERVER_NAME',
    default: '(host of the address)',
    meaning: "name the server's certificate must carry (and the SNI sent)",
  },
  {
    name: 'TEMPORAL_CONFIG_FILE',
    default: '(none)',
    meaning: 'TOML file of Temporal profiles (as `temporal config` writes them); the variables above override it',
  },
  {
    name: 'TEMPORAL_PROFILE',
    default: 'default',
    meaning: 'profile to read from TEMPORAL_CONFIG_FILE, or from ~/.config/temporalio/temporal.toml when that is unset',
  },
  {
    name: 'TEMPORAL_UI_URL',
    default: 'http://127.0.0.1:8233',
    meaning: 'Temporal UI address linked from process pages',
  },
  {
    name: 'TRAINYARD_DATA_DIR',
    default: './data',
    meaning: 'embedded database, Temporal SQLite file, local run directories, generated secret',
  },
  {
    name: 'TRAINYARD_SECRET',
    default: '(generated)',
    meaning: 'key that encrypts stored SSH keys; generated into the data directory when unset',
  },
  {
    name: 'TRAINYARD_KEYS_DIR',
    default: '(none)',
    meaning: 'the only folder SSH private keys may be read from by path',
  },
  {
    name: 'TRAINYARD_LOCAL_MACHINE',
    default: 'false (true in npm start)',
    meaning: 'this worker serves the built-in `local` machine',
  },
  { name: 'TRAINYARD_ADMIN_PASSWORD', default: '(generated)', meaning: 'password of the admin created at first start' },
  { name: 'TRAINYARD_TEMPORAL_PORT', default: '7233', meaning: 'port of the dev server started by npm start' },
  { name: 'TRAINYARD_TEMPORAL_UI_PORT', default: '8233', meaning: 'UI port of the dev server started by npm start' },
  {
    name: 'TEMPORAL_CLI',
    default: '(found or built)',
    meaning: 'path to a Temporal CLI binary to use for the dev server',
  },
  { name: 'LOG_LEVEL', default: 'info', meaning: 'debug, info, warn or error' },
  {
    name: 'TRUST_PROXY',
    default: 'false',
    meaning:
      'whose `X-Forwarded-For`/`-Proto` to believe (login limits, audit log, Secure cookies): false = ' +
      'nobody; a hop count (1 = the one proxy in front, as in docker-compose.yml); or a comma list of ' +
      'proxy addresses/CIDRs; true believes anyone',
  },
  {
    name: 'TRAINYARD_BUILD_ID',
    default: '(version+commit)',
    meaning:
      "this worker's build id, shown in its start-up line and in Temporal (the deployment version of " +
      'its workflow tasks); default `<package version>+<git commit>` when the commit is known',
  },
  {
    name: 'TRAINYARD_WORKER_METRICS_ADDRESS',
    default: '(off)',
    meaning: 'host:port a worker serves its Prometheus `/metrics` on (docs/operations.md), e.g. 127.0.0.1:9464',
  },
  {
    name: 'TRAINYARD_WORKER_SDK_METRICS_ADDRESS',
    default: '(off)',
    meaning: "host:port a worker serves the Temporal SDK's metrics on (task latency, slots), e.g. 127.0.0.1:9465",
  },
  ...OIDC_SETTINGS,
  {
    name: 'TRAINYARD_NOTIFY_RETRY_INITIAL_MS',
    default: '1000',
    meaning:
      'first wait before a failed notification delivery is retried; it doubles up to 10 min, and a delivery is ' +
      'retried for 24 h',
  },
];
