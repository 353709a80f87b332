// The small parsers every setting goes through, and the error that collects their mistakes.
import { EXPECTED_ERROR } from '../domain/failures.js';

/** Every mistake found in the settings, one line each; `message` is the lines joined. */
export class ConfigError extends Error {
  override name = EXPECTED_ERROR.config;
  readonly problems: string[];
  constructor(problems: string | string[]) {
    const lines = typeof problems === 'string' ? [problems] : problems;
    super(lines.join('\n'));
    this.problems = lines;
  }
}

export type Env = Record<string, string | undefined>;

export function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

export function portOf(env: Env, name: string, fallback: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  // Digits only: Number() would also take 0x50 or 8e3.
  const port = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`${name}=${raw} is not a port; set ${name} to a number from 1 to 65535.`);
  }
  return port;
}

export function boolOf(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`${name}=${raw} is not a boolean; set ${name} to true or false.`);
}

/** `raw` must be host:port; `label` names where it came from (`TEMPORAL_ADDRESS=…` or a profile key). */
export function checkHostPort(raw: string, label: string): string {
  const match = /^[A-Za-z0-9.\-_[\]:]+:(\d{1,5})$/.exec(raw);
  const port = match ? Number(match[1]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new ConfigError(`${label} is not host:port; set it like 127.0.0.1:7233.`);
  }
  return raw;
}

/** A bind address, host:port (the host an IPv4/IPv6 address or a name). */
export function bindAddressOf(env: Env, name: string): string | null {
  const raw = read(env, name);
  if (raw === undefined) return null;
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+):(\d{1,5})$/.exec(raw);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new ConfigError(
      `${name}=${raw} is not host:port; set it like 127.0.0.1:9464 (0.0.0.0:9464 for every interface).`,
    );
  }
  return raw;
}

export function urlOf(env: Env, name: string, protocols: string[]): string | null {
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
