// How to reach Temporal: the address, namespace, TLS, API key and gRPC headers from the
// standard TEMPORAL_* variables and TOML profiles (@temporalio/envconfig), every mistake a line.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { TLSConfig } from '@temporalio/client';
import {
  loadClientConfig,
  loadClientConfigProfile,
  toClientOptions,
  type ClientConfigProfile,
  type ConfigDataSource,
} from '@temporalio/envconfig';
import type { Config } from './config.js';
import { boolOf, checkHostPort, read, type Env } from './config-read.js';

/** The TLS material a profile or TEMPORAL_TLS_* names: each field, its variables and its TOML key. */
const TLS_FILES = [
  { field: 'clientCert', variable: 'TEMPORAL_TLS_CLIENT_CERT', toml: 'tls.client_cert', kind: 'certificate' },
  { field: 'clientKey', variable: 'TEMPORAL_TLS_CLIENT_KEY', toml: 'tls.client_key', kind: 'private key' },
  {
    field: 'serverCACert',
    variable: 'TEMPORAL_TLS_SERVER_CA_CERT',
    toml: 'tls.server_ca_cert',
    kind: 'CA certificate',
  },
] as const;

type TemporalConnection = Pick<Config['temporal'], 'address' | 'namespace' | 'tls' | 'apiKey' | 'grpcMeta' | 'profile'>;

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'not readable by this user';
  if (code === 'EISDIR') return 'a directory, not a file';
  return (error as Error).message.split('\n')[0]!;
}

/** Where the Temporal CLI and SDKs keep profiles when TEMPORAL_CONFIG_FILE is unset (Linux). */
function defaultProfileFile(env: Env): string | null {
  const home = read(env, 'HOME');
  const configHome = read(env, 'XDG_CONFIG_HOME') ?? (home ? path.join(home, '.config') : undefined);
  return configHome ? path.join(configHome, 'temporalio', 'temporal.toml') : null;
}

/** The profile envconfig makes of a TOML file and the variables, and what messages call it. */
interface ReadProfile {
  profile: ClientConfigProfile;
  /** `profile "name" in file`; null when no profile was read from a file. */
  label: string | null;
}

/**
 * A TOML profile (TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE) overridden by the variables, as
 * @temporalio/envconfig reads it. A profile file is read only when one of those two
 * variables names it, so a machine that sets neither connects as before.
 */
function profileOf(env: Env, given: Record<string, string>, problems: string[]): ReadProfile {
  const fileName = given.TEMPORAL_CONFIG_FILE ?? (given.TEMPORAL_PROFILE ? defaultProfileFile(env) : null);
  const profileName = given.TEMPORAL_PROFILE ?? 'default';
  let fileText: string | null = null;
  let label: string | null = null;
  if (fileName) {
    try {
      fileText = fs.readFileSync(fileName, 'utf8');
    } catch (error) {
      problems.push(
        given.TEMPORAL_CONFIG_FILE
          ? `TEMPORAL_CONFIG_FILE=${fileName}: ${reason(error)}; point it at a TOML file of Temporal profiles, or unset it.`
          : `TEMPORAL_PROFILE=${profileName}, but ${fileName}: ${reason(error)}; set TEMPORAL_CONFIG_FILE to the file that defines the profile.`,
      );
    }
  }
  if (fileText !== null) {
    try {
      const profiles = loadClientConfig({ configSource: { data: fileText } }).profiles;
      if (profileName in profiles) label = `profile "${profileName}" in ${fileName}`;
      else if (given.TEMPORAL_PROFILE) {
        const known = Object.keys(profiles);
        problems.push(
          `TEMPORAL_PROFILE=${profileName}: ${fileName} has no such profile (${known.length ? `it has ${known.join(', ')}` : 'it has none'}).`,
        );
      }
    } catch (error) {
      problems.push(
        `${given.TEMPORAL_CONFIG_FILE ? 'TEMPORAL_CONFIG_FILE=' : ''}${fileName} is not a TOML file of Temporal profiles: ${reason(error)}.`,
      );
    }
  }
  try {
    const source = label ? { configSource: { data: fileText! }, profile: profileName } : { disableFile: true };
    return { profile: loadClientConfigProfile({ ...source, overrideEnvVars: given }), label };
  } catch (error) {
    problems.push(`${label ?? 'TEMPORAL_TLS_*'}: ${reason(error)}.`);
    return { profile: {}, label };
  }
}

/** Names a setting in a message: the variable when it is set, else the profile's key. */
type Origin = (variable: string, tomlKey: string) => string;

/**
 * Mistakes in a profile's TLS: each file present, readable and PEM of its kind; a client
 * certificate with its key and that key its own; TLS files with TLS off.
 */
function tlsProblems(
  tls: NonNullable<ClientConfigProfile['tls']>,
  origin: Origin,
  tlsOff: string,
): { problems: string[]; settings: string[] } {
  const problems: string[] = [];
  const parsed: { clientCert?: crypto.X509Certificate; clientKey?: crypto.KeyObject } = {};
  const labelOf = (file: (typeof TLS_FILES)[number], source: ConfigDataSource): string =>
    'path' in source
      ? `${origin(`${file.variable}_PATH`, `${file.toml}_path`)}=${source.path}`
      : origin(`${file.variable}_DATA`, `${file.toml}_data`);
  for (const file of TLS_FILES) {
    const source = tls[file.field];
    if (!source) continue;
    const label = labelOf(file, source);
    let data: Buffer;
    try {
      data = 'path' in source ? fs.readFileSync(source.path) : Buffer.from(source.data);
    } catch (error) {
      problems.push(`${label}: ${reason(error)}.`);
      continue;
    }
    try {
      if (file.field === 'clientKey') parsed.clientKey = crypto.createPrivateKey(data);
      else {
        const certificate = new crypto.X509Certificate(data);
        if (file.field === 'clientCert') parsed.clientCert = certificate;
        if (Date.parse(certificate.validTo) < Date.now())
          problems.push(`${label}: the ${file.kind} expired on ${certificate.validTo}; renew it.`);
      }
    } catch {
      problems.push(`${label} does not hold a PEM ${file.kind}.`);
    }
  }
  const [certFile, keyFile] = TLS_FILES;
  if (tls.clientCert && !tls.clientKey) {
    problems.push(
      `${labelOf(certFile, tls.clientCert)} is set without its private key; set TEMPORAL_TLS_CLIENT_KEY_PATH too.`,
    );
  }
  if (tls.clientKey && !tls.clientCert) {
    problems.push(
      `${labelOf(keyFile, tls.clientKey)} is set without its certificate; set TEMPORAL_TLS_CLIENT_CERT_PATH too.`,
    );
  }
  if (parsed.clientCert && parsed.clientKey && !parsed.clientCert.checkPrivateKey(parsed.clientKey)) {
    problems.push(
      `${labelOf(keyFile, tls.clientKey!)} is not the private key of ${labelOf(certFile, tls.clientCert!)}.`,
    );
  }
  const files = TLS_FILES.filter((file) => tls[file.field]).map(
    (file) => labelOf(file, tls[file.field]!).split('=')[0]!,
  );
  if (tls.disabled && files.length > 0) {
    problems.push(
      `${tlsOff} turns TLS off, yet ${files.join(', ')} ${files.length > 1 ? 'are' : 'is'} set; drop one or the other.`,
    );
  }
  const settings = [...files, ...(tls.serverName ? [origin('TEMPORAL_TLS_SERVER_NAME', 'tls.server_name')] : [])];
  return { problems, settings };
}

/**
 * The connection to an outside Temporal: address, namespace, TLS, API key and headers from
 * a profile and TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS* and
 * TEMPORAL_GRPC_META_*. Every mistake found is pushed onto `problems`, one line each.
 */
export function temporalConnectionOf(env: Env, problems: string[]): TemporalConnection {
  // envconfig takes a set-but-blank variable as a value; here blank means unset.
  const given: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith('TEMPORAL_') && value !== undefined && value.trim() !== '') given[name] = value.trim();
  }
  if (given.TEMPORAL_TLS !== undefined) {
    // envconfig reads anything but 1/true as false: a typo would turn TLS off unseen.
    try {
      given.TEMPORAL_TLS = String(boolOf(env, 'TEMPORAL_TLS', true));
    } catch (error) {
      problems.push((error as Error).message);
      delete given.TEMPORAL_TLS;
    }
  }
  const { profile, label } = profileOf(env, given, problems);
  const origin: Origin = (variable, tomlKey) =>
    given[variable] !== undefined || !label ? variable : `${label}: ${tomlKey}`;

  let address: string | null = null;
  if (profile.address) {
    try {
      address = checkHostPort(profile.address, `${origin('TEMPORAL_ADDRESS', 'address')}=${profile.address}`);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  const tlsOff = given.TEMPORAL_TLS !== undefined ? 'TEMPORAL_TLS=false' : `${label}: tls.disabled=true`;
  const tls = tlsProblems(profile.tls ?? {}, origin, tlsOff);
  problems.push(...tls.problems);
  const needsServer = [...(profile.apiKey ? [origin('TEMPORAL_API_KEY', 'api_key')] : []), ...tls.settings];
  if (!profile.address && needsServer.length > 0) {
    const many = needsServer.length > 1;
    problems.push(
      `${needsServer.join(', ')} ${many ? 'are' : 'is'} set without TEMPORAL_ADDRESS; set the address of the server ${many ? 'they are' : 'it is'} for (the dev server npm start runs takes neither).`,
    );
  }

  let tlsOption: TLSConfig | boolean = false;
  if (problems.length === 0) {
    try {
      tlsOption = toClientOptions(profile).connectionOptions.tls ?? false;
    } catch (error) {
      problems.push(`${label ?? 'TEMPORAL_TLS_*'}: ${reason(error)}.`);
    }
  }
  return {
    address,
    namespace: profile.namespace ?? 'default',
    tls: tlsOption,
    apiKey: profile.apiKey ?? null,
    grpcMeta: profile.grpcMeta ?? {},
    profile: label,
  };
}
