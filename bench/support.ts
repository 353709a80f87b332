// What the lifecycle, scale and pages benchmarks share: a fresh PostgreSQL database
// (dropped at the end), a headless in-memory Temporal dev server, a worker run as a
// child process (its own process group, so its memory is its own), percentiles, and
// the table every benchmark prints: figure, baseline from the same run, ratio,
// target, met or missed. Benchmarks are programs, not tests: they print, never assert.
import { groupAlive } from '../lib/proc.js';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import postgres from 'postgres';
import { openDatabase, type Database } from '../db/client.js';
import { runMigrations } from '../db/migrate.js';
import { ensureTemporalCli } from '../lib/temporal-cli.js';
import { freePort, startTemporalDevServer } from '../lib/temporal-dev-server.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const quick = process.argv.includes('--quick');
export const BENCH_SECRET = 'bench-secret-0123456789abcdef';
export const ADMIN_PASSWORD = 'bench-admin-password';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The maintenance database the bench creates its own next to. */
export function adminDatabaseUrl(): string {
  return process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
}

// ---------------------------------------------------------------------------
// Clean-up: everything a bench makes registers its undoing here; `run` calls
// them in reverse order whatever happens, on Ctrl-C and SIGTERM too.

type Cleanup = { what: string; undo: () => Promise<void> | void };
const cleanups: Cleanup[] = [];

export function onCleanup(what: string, undo: () => Promise<void> | void): void {
  cleanups.push({ what, undo });
}

let cleaning: Promise<void> | null = null;
export function cleanUp(): Promise<void> {
  // Calls still in flight (an action whose client is being closed) may throw from their
  // retry timers now; the bench is ending, so that is noise, not a reason to skip the rest.
  if (!cleaning) {
    const seen = new Set<string>();
    const note = (error: unknown) => {
      const message = (error as Error)?.message ?? String(error);
      if (!seen.has(message)) console.error(`(during clean-up, ignored) ${message}`);
      seen.add(message);
    };
    process.on('uncaughtException', note);
    process.on('unhandledRejection', note);
  }
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const { what, undo } = cleanups.pop()!;
      try {
        await Promise.race([undo(), sleep(20_000).then(() => Promise.reject(new Error('took over 20 s')))]);
      } catch (error) {
        console.error(`clean-up of ${what} failed: ${(error as Error).message}`);
      }
    }
  })();
  return cleaning;
}

/** Runs a bench's body, then every clean-up; exits 1 on an error (after cleaning up). */
export async function run(name: string, body: () => Promise<void>): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`${name}: ${signal}; cleaning up`);
      void cleanUp().finally(() => process.exit(130));
    });
  }
  let failed = false;
  const started = performance.now();
  try {
    await body();
  } catch (error) {
    failed = true;
    console.error(`${name} failed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await cleanUp();
  }
  console.log(`${name}: ${((performance.now() - started) / 1000).toFixed(1)} s in all${failed ? ' (failed)' : ''}`);
  // Lingering handles (SDK connections, timers) must not keep a finished bench alive.
  process.exit(failed ? 1 : 0);
}

// ---------------------------------------------------------------------------
// Services

export interface BenchDatabase {
  name: string;
  url: string;
  database: Database;
}

/** A fresh database with the migrations applied; dropped (with force) at clean-up. */
export async function createBenchDatabase(
  label: string,
  options: { max?: number; onQuery?: (query: string) => void } = {},
): Promise<BenchDatabase> {
  const name = `trainyard_bench_${label}_${process.pid}_${crypto.randomBytes(3).toString('hex')}`;
  const admin = postgres(adminDatabaseUrl(), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  onCleanup(`database ${name}`, async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });
  const url = new URL(adminDatabaseUrl());
  url.pathname = `/${name}`;
  const database = openDatabase(url.toString(), {
    max: options.max ?? 10,
    applicationName: `bench-${label}`,
    ...(options.onQuery ? { onQuery: options.onQuery } : {}),
  });
  onCleanup(`connections to ${name}`, () => database.close());
  await runMigrations(database);
  return { name, url: url.toString(), database };
}

/** A headless Temporal dev server with in-memory state, stopped at clean-up. */
export async function startTemporal(): Promise<{ address: string; pid: number }> {
  const cli = await ensureTemporalCli({ log: (line) => console.error(`[temporal-cli] ${line}`) });
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trainyard-bench-temporal-'));
  const server = await startTemporalDevServer({
    cli,
    port: await freePort(),
    uiPort: null,
    namespace: 'default',
    dbFile: null,
    stateDir,
  });
  onCleanup('the Temporal dev server', async () => {
    await server.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
  return { address: server.address, pid: server.pid };
}

/** A Temporal client as the services take it (`ProcessDeps.client`), closed at clean-up. */
export async function temporalClient(address: string): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address });
  onCleanup('the Temporal client', () => connection.close());
  return { client: new Client({ connection }), connection };
}

/** At clean-up, SIGKILLs every trainer the bench's database still knows of (after an error or Ctrl-C). */
export function killTrainersAtCleanup(database: Database): void {
  onCleanup('trainers left running', async () => {
    const killed = await killTrainersOf(database);
    if (killed > 0) console.error(`killed ${killed} trainer group(s) left running`);
  });
}

export function tempDir(label: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `trainyard-bench-${label}-`));
  onCleanup(`directory ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Ends a detached child's whole process group: TERM, then KILL after `graceMs`. */
export async function killGroup(child: ChildProcess, graceMs = 8000): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!done) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
    await exited;
  }
}

export interface WorkerChild {
  pid: number;
  /** Its output so far (the last 20 kB), for error messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * `trainyard worker` as a child process in its own process group — `node --import tsx`
 * rather than the tsx launcher, so the pid is the worker's own and /proc/<pid> is its
 * memory. Resolves once it polls. Stopped (TERM, then KILL) at clean-up.
 */
export async function startWorkerChild(options: {
  databaseUrl: string;
  temporalAddress: string;
  dataDir: string;
}): Promise<WorkerChild> {
  // BENCH_WORKER_NODE_ARGS: extra node flags for the worker, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  // to see where its time goes.
  const nodeArgs = (process.env.BENCH_WORKER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const child = spawn(
    process.execPath,
    [...nodeArgs, '--import', 'tsx', path.join(ROOT, 'bin', 'trainyard.ts'), 'worker'],
    {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
        HOME: process.env.HOME ?? '/',
        LANG: process.env.LANG ?? 'C.UTF-8',
        DATABASE_URL: options.databaseUrl,
        TEMPORAL_ADDRESS: options.temporalAddress,
        TRAINYARD_LOCAL_MACHINE: 'true',
        TRAINYARD_DATA_DIR: options.dataDir,
        TRAINYARD_SECRET: BENCH_SECRET,
        TRAINYARD_ADMIN_PASSWORD: ADMIN_PASSWORD,
        LOG_LEVEL: 'warn',
      },
    },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const stop = () => killGroup(child, 10_000);
  onCleanup('the worker process', stop);
  const deadline = Date.now() + 120_000;
  while (!/Trainyard worker: polling/.test(output)) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`the worker exited (${child.exitCode ?? child.signalCode}): ${output}`);
    if (Date.now() > deadline) throw new Error(`the worker did not start polling within 120 s: ${output}`);
    await sleep(100);
  }
  return { pid: child.pid!, output: () => output, stop };
}

/** VmRSS and VmHWM (peak) of a process, in bytes, from /proc/<pid>/status. */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

/** User + system CPU time a process has used, in seconds. */
export function cpuSecondsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** Pids of the server processes serving the other connections to this database. */
export async function backendPids(sql: postgres.Sql): Promise<number[]> {
  const rows = await sql<
    { pid: number }[]
  >`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
  return rows.map((r) => r.pid);
}

/** CPU seconds used by those of `pids` that still run. */
export function cpuSecondsOfAll(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + (fs.existsSync(`/proc/${pid}`) ? cpuSecondsOf(pid) : 0), 0);
}

/** Jiffies the whole machine spent busy and in all, from /proc/stat (for "cores busy" over an interval). */
export function machineCpu(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

export { groupAlive };

/** SIGKILLs the process groups of every trainer this bench's database knows of (clean-up after an error). */
export async function killTrainersOf(database: Database): Promise<number> {
  const rows = await database.sql<{ pgid: number | null }[]>`select pgid from runs where pgid is not null`;
  let killed = 0;
  for (const { pgid } of rows) {
    if (pgid === null || pgid <= 1 || !groupAlive(pgid)) continue;
    try {
      process.kill(-pgid, 'SIGKILL');
      killed += 1;
    } catch {}
  }
  return killed;
}

// ---------------------------------------------------------------------------
// Figures

export interface Stats {
  n: number;
  p50: number;
  p95: number;
  max: number;
}

/** Nearest-rank percentiles. */
export function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? NaN;
  return { n: sorted.length, p50: rank(0.5), p95: rank(0.95), max: sorted[sorted.length - 1] ?? NaN };
}

export const ms = (x: number) => (Number.isFinite(x) ? `${x < 10 ? x.toFixed(1) : Math.round(x)} ms` : '—');
export const triple = (s: Stats, unit = ms) => `${unit(s.p50)} / ${unit(s.p95)} / ${unit(s.max)}`;
export const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
export const count = (x: number) => Math.round(x).toLocaleString('en-US');

export interface Row {
  figure: string;
  value: string;
  baseline?: string;
  /** value / baseline, printed as ×. */
  ratio?: number;
  target?: string;
  /** undefined: no target. */
  met?: boolean;
}

/** A Markdown table (readable in a terminal, pasted as is into docs/performance.md). */
export function printTable(title: string, rows: Row[], notes: string[] = []): void {
  const header = ['figure', 'measured', 'baseline (same run)', 'ratio', 'target', 'result'];
  const body = rows.map((r) => [
    r.figure,
    r.value,
    r.baseline ?? '—',
    r.ratio === undefined || !Number.isFinite(r.ratio) ? '—' : `${r.ratio.toFixed(r.ratio < 10 ? 2 : 0)}×`,
    r.target ?? '—',
    r.met === undefined ? '—' : r.met ? 'met' : '**missed**',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log('');
  console.log(`### ${title}`);
  console.log('');
  console.log(
    `${new Date().toISOString()} · ${os.cpus().length} cpus (${os.cpus()[0]?.model.trim() ?? 'unknown'}) · load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} · ${quick ? '--quick' : 'full'}`,
  );
  console.log('');
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const b of body) console.log(line(b));
  for (const note of notes) console.log(`\n${note}`);
  console.log('');
}

/** Polls `probe` every `everyMs` until it returns something other than null/undefined/false. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  timeoutMs = 60_000,
  everyMs = 5,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Runs `work` over `items` with at most `limit` at a time; an aborted `signal` starts no more. */
export async function pool<T, R>(
  items: T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
  signal?: AbortSignal,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !signal?.aborted) {
      const i = next++;
      results[i] = await work(items[i]!, i);
    }
  });
  await Promise.all(lanes);
  return results;
}
