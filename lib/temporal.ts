// Temporal client connections for the web server, the CLI and the worker: the address and
// the TLS, API key and headers lib/config.ts read, and one clear line when TLS is what fails.
import tls from 'node:tls';
import { status } from '@grpc/grpc-js';
import { Client, Connection, isGrpcServiceError, type TLSConfig } from '@temporalio/client';
import type { Config } from './config.js';
import { ensureSearchAttributes } from './temporal-search-attributes.js';
import { EXPECTED_ERROR } from '../domain/failures.js';

export class TemporalUnreachableError extends Error {
  override name = EXPECTED_ERROR.temporalUnreachable;
}

/** A connection that will not work however long we wait: TLS or credentials are wrong. */
export class TemporalConnectionRefusedError extends Error {
  override name = EXPECTED_ERROR.temporalConnectionRefused;
}

/** How to reach a frontend beyond its address; a dev server needs none of it. */
export type TemporalConnectionSettings = Pick<Config['temporal'], 'tls' | 'apiKey' | 'grpcMeta'>;

/** The options both SDK connections (client and worker) take. */
export function connectionOptions(
  address: string,
  settings?: TemporalConnectionSettings,
): { address: string; tls: TLSConfig | boolean; apiKey?: string; metadata?: Record<string, string> } {
  return {
    address,
    tls: settings?.tls ?? false,
    ...(settings?.apiKey ? { apiKey: settings.apiKey } : {}),
    ...(settings && Object.keys(settings.grpcMeta).length > 0 ? { metadata: settings.grpcMeta } : {}),
  };
}

function hostAndPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(at + 1)) };
}

type Handshake = { ok: true } | { ok: false; code: string; message: string };

/** One TLS handshake as gRPC would make it (ALPN h2), waiting briefly for an alert sent after it. */
function handshake(address: string, options: tls.ConnectionOptions): Promise<Handshake> {
  const { host, port } = hostAndPort(address);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: Handshake) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const socket = tls.connect({ host, port, ALPNProtocols: ['h2'], ...options });
    // A server that wants a client certificate says so after a TLS 1.3 handshake completes.
    socket.once('secureConnect', () => setTimeout(() => finish({ ok: true }), 500));
    socket.once('error', (error: NodeJS.ErrnoException) =>
      finish({ ok: false, code: error.code ?? '', message: error.message }),
    );
    const timer = setTimeout(() => finish({ ok: false, code: 'TIMEOUT', message: 'no answer' }), 5000);
  });
}

const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * Why a connection to `address` failed, when TLS is the reason: one line that says what to
 * set, or null (not listening, or the handshake is fine and the fault lies elsewhere).
 */
export async function diagnoseTls(address: string, settings?: TemporalConnectionSettings): Promise<string | null> {
  const wanted = settings?.tls ?? false;
  const at = `Temporal at ${address}`;
  if (wanted === false) {
    // Plaintext was asked for: does the server speak TLS?
    const probe = await handshake(address, { rejectUnauthorized: false });
    const speaksTls = probe.ok || /alert|certificate required/i.test(probe.message);
    return speaksTls
      ? `${at} speaks TLS; set TEMPORAL_TLS=true (with TEMPORAL_TLS_SERVER_CA_CERT_PATH for a private CA, and a client certificate for mTLS).`
      : null;
  }
  const config: TLSConfig = wanted === true ? {} : wanted;
  const serverName = config.serverNameOverride ?? hostAndPort(address).host;
  const result = await handshake(address, {
    ...(config.serverRootCACertificate ? { ca: Buffer.from(config.serverRootCACertificate) } : {}),
    ...(config.clientCertPair
      ? { cert: Buffer.from(config.clientCertPair.crt), key: Buffer.from(config.clientCertPair.key) }
      : {}),
    // Node refuses an IP address as SNI; the certificate is still checked against it.
    ...(tlsServername(serverName) ? { servername: serverName } : {}),
    checkServerIdentity: (_host, certificate) => tls.checkServerIdentity(serverName, certificate),
  });
  if (result.ok) return null;
  const detail = result.message.replace(/^[^:]*routines:[^:]*:/, '').trim();
  if (UNTRUSTED.has(result.code)) {
    return config.serverRootCACertificate
      ? `${at} presented a certificate that the CA in TEMPORAL_TLS_SERVER_CA_CERT_PATH did not sign (${detail}); set it to the CA that signed the server's certificate.`
      : `${at} presented a certificate no system CA vouches for (${detail}); set TEMPORAL_TLS_SERVER_CA_CERT_PATH to the CA that signed it.`;
  }
  if (result.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `${at} presented a certificate that is not for ${serverName} (${detail}); set TEMPORAL_TLS_SERVER_NAME to a name it carries.`;
  }
  if (result.code === 'CERT_HAS_EXPIRED' || result.code === 'CERT_NOT_YET_VALID') {
    return `${at} presented a certificate that is not valid now (${detail}); the server's certificate needs renewing.`;
  }
  if (
    /certificate required/i.test(result.message) ||
    (!config.clientCertPair && /handshake failure/i.test(result.message))
  ) {
    return `${at} requires a client certificate (mTLS) and none was given; set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH.`;
  }
  if (
    /bad certificate|unknown ca|certificate unknown|certificate expired|unsupported certificate/i.test(result.message)
  ) {
    return `${at} refused the client certificate in TEMPORAL_TLS_CLIENT_CERT_PATH (${detail}); use one signed by a CA the server trusts.`;
  }
  if (
    /wrong version number|packet length too long|unknown protocol|ECONNRESET/i.test(`${result.code} ${result.message}`)
  ) {
    return `${at} does not speak TLS (${detail}); unset TEMPORAL_TLS and the TEMPORAL_TLS_* settings, or check TEMPORAL_ADDRESS.`;
  }
  return null;
}

function tlsServername(name: string): boolean {
  return !/^[\d.]+$/.test(name) && !name.includes(':');
}

/**
 * The error to show for a failed connection: a TemporalConnectionRefusedError that says
 * what to set when TLS or the API key is the reason, else `error` itself.
 */
export async function explainConnectError(
  error: unknown,
  address: string,
  settings?: TemporalConnectionSettings,
): Promise<unknown> {
  if (isGrpcServiceError(error) && error.code === status.UNAUTHENTICATED) {
    return new TemporalConnectionRefusedError(
      `Temporal at ${address} refused the credentials (${error.details || error.message}); check TEMPORAL_API_KEY${settings?.apiKey ? '' : ' (none is set)'}.`,
    );
  }
  const tlsProblem = await diagnoseTls(address, settings).catch(() => null);
  return tlsProblem ? new TemporalConnectionRefusedError(tlsProblem) : error;
}

export async function connectTemporal(
  address: string,
  namespace: string,
  options: { timeoutMs?: number; settings?: TemporalConnectionSettings; log?: (line: string) => void } = {},
): Promise<{ connection: Connection; client: Client }> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  let lastError: unknown;
  while (Date.now() < deadline) {
    let connection: Connection | null = null;
    try {
      connection = await Connection.connect({ ...connectionOptions(address, options.settings), connectTimeout: 2000 });
      await connection.workflowService.getSystemInfo({});
      await ensureSearchAttributes(connection, namespace, options.log);
      return { connection, client: new Client({ connection, namespace }) };
    } catch (error) {
      await connection?.close().catch(() => undefined);
      lastError = error;
      // Waiting does not mend a wrong certificate or key: say so now.
      const explained = await explainConnectError(error, address, options.settings);
      if (explained instanceof TemporalConnectionRefusedError) throw explained;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new TemporalUnreachableError(
    `Cannot reach Temporal at ${address}: ${(lastError as Error)?.message}. Check TEMPORAL_ADDRESS (or unset it to let npm start run a dev server).`,
  );
}
