// Runs `temporal server start-dev` (SQLite file, Temporal UI) as a child in its own
// process group, waits until it answers, and stops it cleanly.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from './temporal-search-attributes.js';
import type { FoundCli } from './temporal-cli.js';
import { EXPECTED_ERROR } from '../domain/failures.js';

export interface DevServerOptions {
  cli: FoundCli;
  port: number;
  /** null → no UI (tests). */
  uiPort: number | null;
  namespace: string;
  /** null → in memory (tests); else the SQLite file that keeps workflows across restarts. */
  dbFile: string | null;
  /** Where the server's log and pid file go. */
  stateDir: string;
  readyTimeoutMs?: number;
}

export interface DevServer {
  address: string;
  uiUrl: string | null;
  pid: number;
  stop(): Promise<void>;
}

export class DevServerError extends Error {
  override name = EXPECTED_ERROR.devServer;
}

export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A dev server left behind by a start that was killed outright holds our SQLite file; end it. */
async function reapStale(pidFile: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return;
  let cmdline: string;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmdline.includes('start-dev')) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (processAlive(pid)) process.kill(pid, 'SIGKILL');
}

async function waitReady(address: string, child: ChildProcess, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').slice(-2000) : '';
      throw new DevServerError(
        `The Temporal dev server exited (${child.exitCode ?? child.signalCode}) while starting:\n${tail}`,
      );
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await connection.workflowService.getSystemInfo({});
        return;
      } finally {
        await connection.close();
      }
    } catch (error) {
      lastError = error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new DevServerError(
    `The Temporal dev server did not answer on ${address} within ${timeoutMs} ms: ${String(lastError)}`,
  );
}

export async function startTemporalDevServer(options: DevServerOptions): Promise<DevServer> {
  // Its SQLite file and log hold workflow inputs and histories: the owner's alone.
  fs.mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
  const pidFile = path.join(options.stateDir, 'server.pid');
  const logFile = path.join(options.stateDir, 'server.log');
  await reapStale(pidFile);
  for (const port of [options.port, options.uiPort]) {
    if (port !== null && !(await portIsFree(port))) {
      throw new DevServerError(
        `Port ${port} is in use, so the Temporal dev server cannot start; free it, set TRAINYARD_TEMPORAL_PORT / TRAINYARD_TEMPORAL_UI_PORT, or set TEMPORAL_ADDRESS to use a running server.`,
      );
    }
  }
  // Loopback only, for every socket it opens: --ip binds gRPC and also the HTTP API, the
  // metrics endpoint and the internal services; --ui-ip the UI (it would follow --ip, said
  // here so it cannot drift). The dev server has no authentication at all.
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(options.port),
    '--namespace',
    options.namespace,
    '--log-level',
    'warn',
  ];
  args.push(
    ...(options.uiPort === null ? ['--headless'] : ['--ui-ip', '127.0.0.1', '--ui-port', String(options.uiPort)]),
  );
  if (options.dbFile) {
    fs.mkdirSync(path.dirname(options.dbFile), { recursive: true, mode: 0o700 });
    args.push('--db-filename', options.dbFile);
  }
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
  // Activities the workflow schedules on its own task queue (the control activities) go
  // straight back to the worker that completed the workflow task, saving a poll round trip.
  args.push('--dynamic-config-value', 'system.enableActivityEagerExecution=true');

  const log = fs.openSync(logFile, 'a', 0o600);
  // Own process group: Ctrl-C reaches only us, and we stop the server after the worker
  // has let go of its tasks, never before.
  const child = spawn(options.cli.path, args, { detached: true, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  if (child.pid === undefined) throw new DevServerError(`Could not run ${options.cli.path}.`);
  fs.writeFileSync(pidFile, String(child.pid), { mode: 0o600 });
  const address = `127.0.0.1:${options.port}`;

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      process.kill(-child.pid!, 'SIGTERM');
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 10_000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(pidFile, { force: true });
  };

  try {
    await waitReady(address, child, options.readyTimeoutMs ?? 60_000, logFile);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    address,
    uiUrl: options.uiPort === null ? null : `http://127.0.0.1:${options.uiPort}`,
    pid: child.pid,
    stop,
  };
}
