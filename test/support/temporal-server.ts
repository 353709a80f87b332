// A full Temporal server (not the dev server) for integration tests: its own two
// PostgreSQL databases, frontend mTLS when given certificates made here by openssl
// (./certificates.ts) or plaintext without, every port a free loopback one. Restarting it
// kills the server process and starts it again on the same databases; stopping it kills
// it and drops its databases.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import postgres from 'postgres';
import { portIsFree } from '../../lib/temporal-dev-server.js';
import type { FoundServer } from '../../lib/temporal-server.js';
import type { Certificates } from './certificates.js';
import { waitFor } from './stack.js';

export interface RunningServer {
  /** The frontend, `127.0.0.1:<port>`; it takes mTLS only when started with certificates. */
  address: string;
  /** The two PostgreSQL databases: history and the rest, then visibility. */
  databases: { store: string; visibility: string };
  logFile: string;
  /** Kills the server process (SIGKILL: a crash; SIGTERM: a deploy) and starts it again on the same databases. */
  restart(signal: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A free loopback port below 32768: the server stores membership ports in a PostgreSQL
 * smallint, so the kernel's ephemeral range (where port 0 lands) will not do.
 */
async function lowFreePort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + crypto.randomInt(12_000);
    if (!taken.has(port) && (await portIsFree(port))) {
      taken.add(port);
      return port;
    }
  }
}

/**
 * Creates the two databases, applies the release's schemas, starts the server (frontend
 * mTLS with `certs`, plaintext without) with `numHistoryShards` history shards (4 unless
 * given; fixed once the databases are created) and creates the `default` namespace.
 * `dynamicConfig` is written as the server's dynamic config file.
 */
export async function startTemporalServer(options: {
  found: FoundServer;
  adminDatabaseUrl: string;
  certs?: Certificates;
  numHistoryShards?: number;
  stateDir: string;
  dynamicConfig: Record<string, unknown>;
}): Promise<RunningServer> {
  const { found, certs, stateDir } = options;
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const suffix = crypto.randomBytes(4).toString('hex');
  const names = { store: `trainyard_temporal_${suffix}`, visibility: `trainyard_temporal_vis_${suffix}` };
  const admin = postgres(options.adminDatabaseUrl, { max: 1, onnotice: () => {} });
  const pg = new URL(options.adminDatabaseUrl);
  const pgHost = pg.hostname || '127.0.0.1';
  const pgPort = pg.port || '5432';
  const pgUser = decodeURIComponent(pg.username || 'postgres');
  const pgPassword = decodeURIComponent(pg.password);

  let child: ReturnType<typeof spawn> | null = null;
  const kill = async (signal: 'SIGKILL' | 'SIGTERM'): Promise<void> => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    process.kill(-running.pid!, signal);
    const timer = setTimeout(() => {
      try {
        process.kill(-running.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 10_000);
    await exited;
    clearTimeout(timer);
  };
  const stop = async (): Promise<void> => {
    await kill('SIGTERM');
    for (const name of Object.values(names)) await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  };

  try {
    for (const name of Object.values(names)) await admin.unsafe(`create database ${name}`);
    const schemas = { store: 'temporal', visibility: 'visibility' } as const;
    for (const [key, name] of Object.entries(names) as Array<[keyof typeof names, string]>) {
      const common = [
        '--plugin',
        'postgres12',
        '--ep',
        pgHost,
        '-p',
        pgPort,
        '-u',
        pgUser,
        ...(pgPassword ? ['--pw', pgPassword] : []),
        '--db',
        name,
      ];
      execFileSync(found.sqlTool, [...common, 'setup-schema', '-v', '0.0'], { stdio: ['ignore', 'ignore', 'pipe'] });
      execFileSync(
        found.sqlTool,
        [...common, 'update-schema', '-d', path.join(found.postgresSchemaDir, schemas[key], 'versioned')],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
    }

    const taken = new Set<number>();
    const ports = {
      frontend: 0,
      frontendHttp: 0,
      frontendMembership: 0,
      history: 0,
      historyMembership: 0,
      matching: 0,
      matchingMembership: 0,
      worker: 0,
      workerMembership: 0,
    };
    for (const key of Object.keys(ports) as Array<keyof typeof ports>) ports[key] = await lowFreePort(taken);
    const datastore = (databaseName: string, maxConns: number) => ({
      sql: {
        pluginName: 'postgres12',
        databaseName,
        connectAddr: `${pgHost}:${pgPort}`,
        connectProtocol: 'tcp',
        user: pgUser,
        password: pgPassword,
        maxConns,
        maxIdleConns: maxConns,
        maxConnLifetime: '1h',
      },
    });
    const rpc = (grpcPort: number, membershipPort: number, extra: Record<string, unknown> = {}) => ({
      rpc: { grpcPort, membershipPort, bindOnLocalHost: true, ...extra },
    });
    const dynamicConfigFile = path.join(stateDir, 'dynamicconfig.yaml');
    // JSON is YAML: the server reads both files as YAML.
    fs.writeFileSync(
      dynamicConfigFile,
      JSON.stringify(
        Object.fromEntries(Object.entries(options.dynamicConfig).map(([key, value]) => [key, [{ value }]])),
        null,
        2,
      ),
    );
    const logFile = path.join(stateDir, 'server.log');
    const config = {
      log: { stdout: false, level: 'warn', outputFile: logFile },
      persistence: {
        defaultStore: 'default',
        visibilityStore: 'visibility',
        numHistoryShards: options.numHistoryShards ?? 4,
        // Per service (frontend, history, matching, worker each open their own): four services at
        // 20 + 4 held 56 of PostgreSQL's default 100 connections once warm, leaving the cluster's
        // own processes too few.
        datastores: { default: datastore(names.store, 10), visibility: datastore(names.visibility, 2) },
      },
      global: {
        membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
        ...(certs && {
          tls: {
            frontend: {
              server: {
                certFile: certs.serverCert,
                keyFile: certs.serverKey,
                requireClientAuth: true,
                clientCaFiles: [certs.ca],
              },
              client: { serverName: 'localhost', rootCaFiles: [certs.ca] },
            },
            systemWorker: {
              certFile: certs.clientCert,
              keyFile: certs.clientKey,
              client: { serverName: 'localhost', rootCaFiles: [certs.ca] },
            },
          },
        }),
      },
      services: {
        frontend: rpc(ports.frontend, ports.frontendMembership, { httpPort: ports.frontendHttp }),
        history: rpc(ports.history, ports.historyMembership),
        matching: rpc(ports.matching, ports.matchingMembership),
        worker: rpc(ports.worker, ports.workerMembership),
      },
      clusterMetadata: {
        enableGlobalNamespace: false,
        failoverVersionIncrement: 10,
        masterClusterName: 'active',
        currentClusterName: 'active',
        clusterInformation: {
          active: {
            enabled: true,
            initialFailoverVersion: 1,
            rpcName: 'frontend',
            rpcAddress: `localhost:${ports.frontend}`,
          },
        },
      },
      dcRedirectionPolicy: { policy: 'noop' },
      // Resolved against the server's working directory when relative: absolute here.
      dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
    };
    const configDir = path.join(stateDir, 'config');
    fs.mkdirSync(configDir, { recursive: true });
    fs.writeFileSync(path.join(configDir, 'trainyard.yaml'), JSON.stringify(config, null, 2));

    const address = `127.0.0.1:${ports.frontend}`;
    const tls = certs && {
      serverNameOverride: 'localhost',
      serverRootCACertificate: fs.readFileSync(certs.ca),
      clientCertPair: { crt: fs.readFileSync(certs.clientCert), key: fs.readFileSync(certs.clientKey) },
    };
    const launch = async (): Promise<void> => {
      const out = fs.openSync(path.join(stateDir, 'server.out'), 'a', 0o600);
      const running = spawn(
        found.server,
        ['--root', stateDir, '--config', 'config', '--env', 'trainyard', '--allow-no-auth', 'start'],
        {
          cwd: stateDir,
          detached: true,
          stdio: ['ignore', out, out],
        },
      );
      child = running;
      fs.closeSync(out);
      const tail = () =>
        ['server.out', 'server.log']
          .map((file) => fs.readFileSync(path.join(stateDir, file), 'utf8').slice(-3000))
          .join('\n');
      const deadline = Date.now() + 90_000;
      for (;;) {
        if (running.exitCode !== null) throw new Error(`temporal-server exited ${running.exitCode}:\n${tail()}`);
        try {
          const connection = await Connection.connect({ address, ...(tls ? { tls } : {}), connectTimeout: 1000 });
          try {
            await connection.workflowService.getSystemInfo({});
            return;
          } finally {
            await connection.close();
          }
        } catch (error) {
          if (Date.now() > deadline)
            throw new Error(`temporal-server did not answer on ${address} within 90 s (${String(error)}):\n${tail()}`, {
              cause: error,
            });
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
      }
    };
    await launch();
    // What `temporal operator namespace create default` does; the namespace registry sees it
    // after its refresh interval (the dynamic config sets it short).
    const connection = await Connection.connect({ address, ...(tls ? { tls } : {}) });
    try {
      await connection.workflowService.registerNamespace({
        namespace: 'default',
        workflowExecutionRetentionPeriod: msToTs('1 day'),
      });
      await waitFor(
        'the default namespace',
        async () => {
          await connection.workflowService.describeNamespace({ namespace: 'default' });
          return true;
        },
        30_000,
        300,
      );
    } finally {
      await connection.close();
    }
    const restart = async (signal: 'SIGKILL' | 'SIGTERM'): Promise<void> => {
      await kill(signal);
      await launch();
    };
    return { address, databases: names, logFile, restart, stop };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
