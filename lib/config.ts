// The one place that reads process.env. Every setting of docs/design.md §7 is parsed and
// validated here at boot, so a bad value fails fast with a line that says what to set.
import net from 'node:net';
import path from 'node:path';

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
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function portOf(env: Env, name: string, fallback: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  // Digits only: Number() would also take 0x50 or 8e3.
  const port = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`${name}=${raw} is not a port; set ${name} to a number from 1 to 65535.`);
  }
  return port;
}

function boolOf(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`${name}=${raw} is not a boolean; set ${name} to true or false.`);
}

function hostPortOf(env: Env, name: string): string | null {
  const raw = read(env, name);
  if (raw === undefined) return null;
  const match = /^[A-Za-z0-9.\-_[\]:]+:(\d{1,5})$/.exec(raw);
  const port = match ? Number(match[1]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new ConfigError(`${name}=${raw} is not host:port; set it like 127.0.0.1:7233.`);
  }
  return raw;
}

function urlOf(env: Env, name: string, protocols: string[]): string | null {
  const raw = read(env, name);
  if (raw === undefined) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a URL; set it like ${protocols[0]}//host:port/…`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${name} must start with ${protocols.map((p) => p + '//').join(' or ')}.`);
  }
  return raw;
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
  const entries = raw.split(',').map((item) => item.trim()).filter((item) => item !== '');
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

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const secret = read(env, 'TRAINYARD_SECRET') ?? null;
  if (secret !== null && secret.length < 16) {
    throw new ConfigError('TRAINYARD_SECRET is too short; use at least 16 characters (or unset it to generate one).');
  }
  const logLevel = (read(env, 'LOG_LEVEL') ?? 'info') as Config['logLevel'];
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL=${logLevel} is not one of debug, info, warn, error.`);
  }
  const keysDir = read(env, 'TRAINYARD_KEYS_DIR');
  return {
    port: portOf(env, 'PORT', 3000),
    host: read(env, 'HOST') ?? '127.0.0.1',
    databaseUrl: urlOf(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    temporal: {
      address: hostPortOf(env, 'TEMPORAL_ADDRESS'),
      namespace: read(env, 'TEMPORAL_NAMESPACE') ?? 'default',
      uiUrl: urlOf(env, 'TEMPORAL_UI_URL', ['http:', 'https:']),
      devPort: portOf(env, 'TRAINYARD_TEMPORAL_PORT', 7233),
      devUiPort: portOf(env, 'TRAINYARD_TEMPORAL_UI_PORT', 8233),
      cliPath: read(env, 'TEMPORAL_CLI') ?? null,
    },
    dataDir: path.resolve(cwd, read(env, 'TRAINYARD_DATA_DIR') ?? 'data'),
    secret,
    keysDir: keysDir ? path.resolve(cwd, keysDir) : null,
    localMachine: boolOf(env, 'TRAINYARD_LOCAL_MACHINE', false),
    adminPassword: read(env, 'TRAINYARD_ADMIN_PASSWORD') ?? null,
    logLevel,
    trustProxy: trustProxyOf(env, 'TRUST_PROXY'),
  };
}

/** The settings table the README shows; kept beside the parser so they cannot drift apart. */
export const SETTINGS: ReadonlyArray<{ name: string; default: string; meaning: string }> = [
  { name: 'PORT', default: '3000', meaning: 'HTTP port of the web server' },
  { name: 'HOST', default: '127.0.0.1', meaning: 'address the web server binds (0.0.0.0 to serve other machines)' },
  { name: 'DATABASE_URL', default: '(embedded PGlite)', meaning: 'PostgreSQL URL; unset → embedded PGlite in the data directory' },
  { name: 'TEMPORAL_ADDRESS', default: '(dev server)', meaning: 'Temporal frontend host:port; unset → `npm start` runs a dev server' },
  { name: 'TEMPORAL_NAMESPACE', default: 'default', meaning: 'Temporal namespace' },
  { name: 'TEMPORAL_UI_URL', default: 'http://127.0.0.1:8233', meaning: 'Temporal UI address linked from process pages' },
  { name: 'TRAINYARD_DATA_DIR', default: './data', meaning: 'embedded database, Temporal SQLite file, local run directories, generated secret' },
  { name: 'TRAINYARD_SECRET', default: '(generated)', meaning: 'key that encrypts stored SSH keys; generated into the data directory when unset' },
  { name: 'TRAINYARD_KEYS_DIR', default: '(none)', meaning: 'the only folder SSH private keys may be read from by path' },
  { name: 'TRAINYARD_LOCAL_MACHINE', default: 'false (true in npm start)', meaning: 'this worker serves the built-in `local` machine' },
  { name: 'TRAINYARD_ADMIN_PASSWORD', default: '(generated)', meaning: 'password of the admin created at first start' },
  { name: 'TRAINYARD_TEMPORAL_PORT', default: '7233', meaning: 'port of the dev server started by npm start' },
  { name: 'TRAINYARD_TEMPORAL_UI_PORT', default: '8233', meaning: 'UI port of the dev server started by npm start' },
  { name: 'TEMPORAL_CLI', default: '(found or built)', meaning: 'path to a Temporal CLI binary to use for the dev server' },
  { name: 'LOG_LEVEL', default: 'info', meaning: 'debug, info, warn or error' },
  {
    name: 'TRUST_PROXY',
    default: 'false',
    meaning:
      'whose `X-Forwarded-For`/`-Proto` to believe (login limits, audit log, Secure cookies): false = ' +
      'nobody; a hop count (1 = the one proxy in front, as in docker-compose.yml); or a comma list of ' +
      'proxy addresses/CIDRs; true believes anyone',
  },
];
