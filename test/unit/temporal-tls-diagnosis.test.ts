// diagnoseTls against real loopback sockets (a TLS server with the test certificates, a
// plaintext one, a closed port): the one line it gives for each way TLS goes wrong, and
// none when TLS is fine or nothing listens. The mTLS integration test covers a real
// Temporal server's answers (wrong CA, no or a foreign client certificate, plaintext).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../lib/temporal-dev-server.js';
import { diagnoseTls, type TemporalConnectionSettings } from '../../lib/temporal.js';
import { makeCertificates, type Certificates } from '../support/certificates.js';

let dir: string;
let certs: Certificates;
const servers: net.Server[] = [];

function listen(server: net.Server): Promise<string> {
  servers.push(server);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as net.AddressInfo).port}`)),
  );
}

function settings(config: { serverNameOverride?: string } = {}): TemporalConnectionSettings {
  return {
    tls: {
      serverRootCACertificate: fs.readFileSync(certs.ca),
      clientCertPair: { crt: fs.readFileSync(certs.clientCert), key: fs.readFileSync(certs.clientKey) },
      ...(config.serverNameOverride ? { serverNameOverride: config.serverNameOverride } : {}),
    },
    apiKey: null,
    grpcMeta: {},
  };
}

let tlsAddress: string;
let plainAddress: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-tls-diagnosis-'));
  certs = makeCertificates(dir);
  tlsAddress = await listen(
    tls.createServer(
      { cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey), ALPNProtocols: ['h2'] },
      (socket) => socket.on('error', () => {}),
    ),
  );
  // What a plaintext gRPC server answers to a TLS hello: an HTTP/2 frame, then it hangs up.
  plainAddress = await listen(
    net.createServer((socket) => {
      socket.on('error', () => {});
      socket.end(Buffer.from('000006040000000000000500004000', 'hex'));
    }),
  );
});

afterAll(() => {
  for (const server of servers) server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('diagnoseTls', () => {
  it('finds nothing wrong with a handshake that works', async () => {
    expect(await diagnoseTls(tlsAddress, settings({ serverNameOverride: 'localhost' }))).toBeNull();
    expect(await diagnoseTls(tlsAddress, settings())).toBeNull();
  });

  it('names a certificate that is not for the server name asked for', async () => {
    expect(await diagnoseTls(tlsAddress, settings({ serverNameOverride: 'temporal.example' }))).toMatch(
      new RegExp(
        `^Temporal at ${tlsAddress} presented a certificate that is not for temporal\\.example \\(.+\\); set TEMPORAL_TLS_SERVER_NAME to a name it carries\\.$`,
      ),
    );
  });

  it('says a server that answers TLS in plaintext does not speak TLS', async () => {
    expect(await diagnoseTls(plainAddress, settings())).toMatch(
      new RegExp(
        `^Temporal at ${plainAddress} does not speak TLS \\(.+\\); unset TEMPORAL_TLS and the TEMPORAL_TLS_\\* settings, or check TEMPORAL_ADDRESS\\.$`,
      ),
    );
  });

  it('says a TLS server asked for in plaintext speaks TLS', async () => {
    expect(await diagnoseTls(tlsAddress, { tls: false, apiKey: null, grpcMeta: {} })).toBe(
      `Temporal at ${tlsAddress} speaks TLS; set TEMPORAL_TLS=true (with TEMPORAL_TLS_SERVER_CA_CERT_PATH for a private CA, and a client certificate for mTLS).`,
    );
  });

  it('leaves a port nothing listens on to the caller (it may be starting)', async () => {
    const closed = `127.0.0.1:${await freePort()}`;
    expect(await diagnoseTls(closed, settings())).toBeNull();
    expect(await diagnoseTls(closed, { tls: false, apiKey: null, grpcMeta: {} })).toBeNull();
  });
});
