// Trainyard against a full Temporal server (v1.29.1 on PostgreSQL, not the dev server)
// whose frontend takes mTLS only, with certificates made here. `trainyard web`,
// `trainyard worker` and the CLI connect with the standard TEMPORAL_* variables alone and
// a process on `local` runs to completed; `npm start` gets there through a TOML profile;
// a wrong CA, a missing client certificate and plaintext each stop a start with one line
// that says what to set.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase } from '../../db/client.js';
import { runMigrations } from '../../db/migrate.js';
import { freePort } from '../../lib/temporal-dev-server.js';
import { ensureTemporalServer } from '../../lib/temporal-server.js';
import { makeCertificates, type Certificates } from '../support/certificates.js';
import { startTemporalServer, type RunningServer } from '../support/temporal-server.js';
import { EXAMPLE_TRAINER, groupAlive, TEST_SECRET, TSX, uid, waitFor } from '../support/stack.js';

const run = promisify(execFile);

let dir: string;
let certs: Certificates;
let server: RunningServer | null = null;
let databaseUrl: string;
let dropDatabase: (() => Promise<void>) | null = null;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-mtls-'));
  certs = makeCertificates(path.join(dir, 'certs'));
  // Built once per machine (.ci/run does it before the tests); minutes the first time.
  const found = await ensureTemporalServer({ log: (line) => console.log(`[temporal-server] ${line}`) });
  server = await startTemporalServer({
    found,
    adminDatabaseUrl: inject('adminDatabaseUrl'),
    certs,
    stateDir: path.join(dir, 'server'),
    dynamicConfig: {
      // As docker/temporal/dynamicconfig.yaml and the dev server set it.
      'system.enableActivityEagerExecution': true,
      // The namespace created at start is served within a second.
      'system.namespaceCacheRefreshInterval': '1s',
    },
  });

  // A database of its own: this worker's reconciler must not meet processes whose
  // workflows live on the suite's dev server.
  const name = `trainyard_mtls_${uid()}`;
  const admin = postgres(inject('adminDatabaseUrl'), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  dropDatabase = async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  };
  const url = new URL(inject('adminDatabaseUrl'));
  url.pathname = `/${name}`;
  databaseUrl = url.toString();
  const database = openDatabase(databaseUrl);
  await runMigrations(database);
  await database.close();
}, 30 * 60_000);

afterAll(async () => {
  for (const child of children) {
    if (child.pid !== undefined && groupAlive(child.pid)) process.kill(-child.pid, 'SIGKILL');
  }
  await server?.stop();
  await dropDatabase?.();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The mTLS settings, as a user exports them. */
function tlsVariables(): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: server!.address,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.ca,
    TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert,
    TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey,
    TEMPORAL_TLS_SERVER_NAME: 'localhost',
  };
}

/** A user's shell: none of our settings but the ones given, on this test's database. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(TRAINYARD_|TEMPORAL_|DATABASE_URL$|PORT$|HOST$|LOG_LEVEL$)/.test(key)) continue;
    clean[key] = value;
  }
  return {
    ...clean,
    DATABASE_URL: databaseUrl,
    TRAINYARD_SECRET: TEST_SECRET,
    TRAINYARD_DATA_DIR: path.join(dir, 'data'),
    ...extra,
  };
}

interface Started {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function trainyard(args: string[], environment: NodeJS.ProcessEnv): Started {
  const child = spawn(TSX, ['bin/trainyard.ts', ...args], {
    cwd: process.cwd(),
    env: environment,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitForLine(started: Started, pattern: RegExp, what: string): Promise<void> {
  let code: number | null | undefined;
  void started.exited.then((c) => (code = c));
  await waitFor(
    what,
    async () => {
      if (pattern.test(started.output())) return true;
      if (code !== undefined) throw new Error(`exited ${code}`);
      return false;
    },
    90_000,
    100,
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n--- output ---\n${started.output()}`);
  });
}

/** Runs a command that must fail at start: its exit code and the lines it printed. */
async function failedStart(
  args: string[],
  environment: NodeJS.ProcessEnv,
): Promise<{ code: number | null; lines: string[] }> {
  const started = trainyard(args, environment);
  const code = await started.exited;
  return { code, lines: started.output().trim().split('\n') };
}

describe('Trainyard on a Temporal server that takes mTLS only', () => {
  it('web, worker and CLI connect with the TEMPORAL_* variables, and a process on local runs to completed', async () => {
    const port = await freePort();
    const web = trainyard(['web'], env({ ...tlsVariables(), PORT: String(port) }));
    const worker = trainyard(['worker'], env({ ...tlsVariables(), TRAINYARD_LOCAL_MACHINE: 'true' }));
    await waitForLine(web, /Trainyard web: /, 'trainyard web to listen');
    await waitForLine(worker, /Trainyard worker: polling/, 'trainyard worker to poll');
    // The namespace had none of Trainyard's search attributes; the web server added them.
    expect(web.output()).not.toContain('could not register the search attributes');

    // The CLI: a user and a token for the JSON API.
    const login = `mtls-${uid()}`;
    await run(TSX, ['bin/trainyard.ts', 'user', 'add', login, '--role', 'admin'], {
      env: env({ ...tlsVariables(), TRAINYARD_PASSWORD: `pw-${uid()}-${uid()}` }),
    });
    const { stdout } = await run(TSX, ['bin/trainyard.ts', 'token', 'create', login], { env: env(tlsVariables()) });
    const token = stdout.trim().split('\n').at(-1)!;

    const base = `http://127.0.0.1:${port}`;
    const api = async (method: string, route: string, body?: unknown) => {
      const response = await fetch(`${base}/api/v1${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const text = await response.text();
      if (response.status >= 300) throw new Error(`${method} ${route}: ${response.status} ${text}`);
      return JSON.parse(text) as { id: number; status: string; lastError?: string | null };
    };
    const machines = (await api('GET', '/machines')) as unknown as { items: Array<{ id: number; name: string }> };
    const local = machines.items.find((machine) => machine.name === 'local')!;
    const template = await api('POST', '/templates', {
      name: `mtls ${uid()}`,
      command: `'${TSX}' '${EXAMPLE_TRAINER}'`,
      params: { step_delay_ms: 0, log_every: 10, eval_every: 50 },
      totalSteps: 200,
    });
    const created = await api('POST', '/processes', { templateId: template.id, machineId: local.id });
    expect(await api('POST', `/processes/${created.id}/start`)).toMatchObject({ status: 'queued' });
    let last = '';
    await waitFor(
      'the process to complete',
      async () => {
        const view = await api('GET', `/processes/${created.id}`);
        last = `${view.status}${view.lastError ? ` (${view.lastError})` : ''}`;
        return view.status === 'completed';
      },
      90_000,
      250,
    ).catch((error: Error) => {
      throw new Error(
        `${error.message}; last seen ${last}\n--- web ---\n${web.output()}\n--- worker ---\n${worker.output()}`,
      );
    });
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);

    // As a supervisor would: to the command's process, which passes it on to the program.
    for (const started of [web, worker]) started.child.kill('SIGTERM');
    expect(await Promise.all([web.exited, worker.exited])).toEqual([0, 0]);
  });

  it('npm start reaches it through a TOML profile and starts no dev server of its own', async () => {
    const profiles = path.join(dir, 'temporal.toml');
    fs.writeFileSync(
      profiles,
      [
        '[profile.mtls]',
        `address = "${server!.address}"`,
        'namespace = "default"',
        '[profile.mtls.tls]',
        `server_ca_cert_path = "${certs.ca}"`,
        `client_cert_path = "${certs.clientCert}"`,
        `client_key_path = "${certs.clientKey}"`,
        'server_name = "localhost"',
        '',
      ].join('\n'),
    );
    const dataDir = path.join(dir, 'start-data');
    const child = spawn(TSX, ['bin/start.ts'], {
      cwd: process.cwd(),
      env: env({
        TEMPORAL_CONFIG_FILE: profiles,
        TEMPORAL_PROFILE: 'mtls',
        PORT: String(await freePort()),
        TRAINYARD_DATA_DIR: dataDir,
      }),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitForLine({ child, output: () => output, exited }, /Press Ctrl-C to stop\./, 'npm start to be running');
    expect(output).toContain('Trainyard is running');
    expect(output).not.toMatch(/Temporal UI:|Building the Temporal CLI/);
    // The namespace has the search attributes already (the web server above added them).
    expect(output).not.toContain('could not register the search attributes');
    expect(fs.existsSync(path.join(dataDir, 'temporal'))).toBe(false);
    // To the command's process, which passes it on (tsx itself, signalled too, would answer 130).
    child.kill('SIGINT');
    expect(await exited, output).toBe(0);
  });

  it('a CA that did not sign the server’s certificate stops web and worker with one line naming it', async () => {
    const wrongCa = { ...tlsVariables(), TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.wrongCa };
    const results = await Promise.all([
      failedStart(['web'], env({ ...wrongCa, PORT: String(await freePort()) })),
      failedStart(['worker'], env(wrongCa)),
    ]);
    for (const { code, lines } of results) {
      expect(code).toBe(1);
      expect(lines).toContain(
        `trainyard: Temporal at ${server!.address} presented a certificate that the CA in TEMPORAL_TLS_SERVER_CA_CERT_PATH did not sign (unable to verify the first certificate); set it to the CA that signed the server's certificate.`,
      );
    }
  });

  it('no client certificate stops web and worker with one line saying mTLS needs one', async () => {
    const {
      TEMPORAL_TLS_CLIENT_CERT_PATH: _cert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: _key,
      ...withoutClient
    } = tlsVariables();
    const results = await Promise.all([
      failedStart(['web'], env({ ...withoutClient, PORT: String(await freePort()) })),
      failedStart(['worker'], env(withoutClient)),
    ]);
    for (const { code, lines } of results) {
      expect(code).toBe(1);
      expect(lines).toContain(
        `trainyard: Temporal at ${server!.address} requires a client certificate (mTLS) and none was given; set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH.`,
      );
    }
  });

  it('a client certificate its CA did not sign stops a worker with one line naming it', async () => {
    const stranger = {
      ...tlsVariables(),
      TEMPORAL_TLS_CLIENT_CERT_PATH: certs.strangerCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: certs.strangerKey,
    };
    const { code, lines } = await failedStart(['worker'], env(stranger));
    expect(code).toBe(1);
    expect(lines.find((line) => line.startsWith('trainyard: '))).toMatch(
      new RegExp(
        `^trainyard: Temporal at ${server!.address} refused the client certificate in TEMPORAL_TLS_CLIENT_CERT_PATH \\(.+\\); use one signed by a CA the server trusts\\.$`,
      ),
    );
  });

  it('plaintext to it says the server speaks TLS', async () => {
    const { code, lines } = await failedStart(['worker'], env({ TEMPORAL_ADDRESS: server!.address }));
    expect(code).toBe(1);
    expect(lines).toContain(
      `trainyard: Temporal at ${server!.address} speaks TLS; set TEMPORAL_TLS=true (with TEMPORAL_TLS_SERVER_CA_CERT_PATH for a private CA, and a client certificate for mTLS).`,
    );
  });

  it('mistakes in the variables stop a start before it connects, one line each', async () => {
    const missing = path.join(dir, `missing-${crypto.randomBytes(2).toString('hex')}.pem`);
    const { code, lines } = await failedStart(
      ['worker'],
      env({
        TEMPORAL_ADDRESS: server!.address,
        TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: missing,
      }),
    );
    expect(code).toBe(1);
    expect(lines).toEqual([
      `trainyard: TEMPORAL_TLS_SERVER_CA_CERT_PATH=${missing}: no such file.`,
      `trainyard: TEMPORAL_TLS_CLIENT_CERT_PATH=${certs.clientCert} is set without its private key; set TEMPORAL_TLS_CLIENT_KEY_PATH too.`,
    ]);
  });
});
